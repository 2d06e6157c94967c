package debian

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// release is the verified content of a suite's InRelease.
type release struct {
	suite  string
	byHash bool                // the mirror serves files under by-hash/SHA256/
	files  map[string]fileHash // SHA256 entries, by path relative to dists/SUITE
}

type fileHash struct {
	sha256 string
	size   int64
}

// maxInRelease bounds what is read of an InRelease (Debian's are ~150 KB).
const maxInRelease = 16 << 20

// release fetches, verifies and parses the InRelease of suite, once per
// client.
func (c *Client) release(ctx context.Context, suite string) (*release, error) {
	c.mu.Lock()
	o := c.releases[suite]
	if o == nil {
		o = &onceValue[*release]{}
		c.releases[suite] = o
	}
	c.mu.Unlock()
	r, err := o.get(func() (*release, error) { return c.fetchRelease(ctx, suite) })
	if err != nil {
		// A failure (say, a cancelled context) is not remembered.
		c.mu.Lock()
		if c.releases[suite] == o {
			delete(c.releases, suite)
		}
		c.mu.Unlock()
	}
	return r, err
}

func (c *Client) fetchRelease(ctx context.Context, suite string) (*release, error) {
	url := c.mirror + "/dists/" + suite + "/InRelease"
	rc, err := c.get(ctx, url, suite+"/InRelease")
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", suite, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxInRelease+1))
	if err != nil {
		return nil, fmt.Errorf("suite %s: reading %s: %w", suite, url, err)
	}
	if len(data) > maxInRelease {
		return nil, fmt.Errorf("suite %s: %s is larger than %d bytes", suite, url, maxInRelease)
	}
	keyring := c.keyring
	if keyring == nil {
		if keyring, err = ArchiveKeyring(); err != nil {
			return nil, err
		}
	}
	text, err := verifyClearsigned(data, keyring)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %s: %w", suite, url, err)
	}
	r, err := parseRelease(string(text), suite, time.Now())
	if err != nil {
		return nil, fmt.Errorf("suite %s: %s: %w", suite, url, err)
	}
	return r, nil
}

// parseRelease reads the signed text of an InRelease. now is only compared
// with Valid-Until, so it never reaches an output.
func parseRelease(text, suite string, now time.Time) (*release, error) {
	var para Paragraph
	err := ParseParagraphs(text, func(p Paragraph) error {
		if para == nil {
			para = append(Paragraph(nil), p...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if para == nil {
		return nil, errors.New("empty release file")
	}
	// A validly signed release of another suite must not stand in for
	// the one asked for (a downgrade attack).
	if s, cn := para.Value("Suite"), para.Value("Codename"); suite != s && suite != cn {
		return nil, fmt.Errorf("release is for suite %q (codename %q), not %q", s, cn, suite)
	}
	if vu, ok := para.Get("Valid-Until"); ok {
		t, err := time.Parse(time.RFC1123, strings.Replace(vu, "UTC", "GMT", 1))
		if err == nil && now.After(t) {
			return nil, fmt.Errorf("release expired on %s", vu)
		}
	}
	r := &release{
		suite:  suite,
		byHash: strings.EqualFold(para.Value("Acquire-By-Hash"), "yes"),
		files:  map[string]fileHash{},
	}
	sums, ok := para.Get("SHA256")
	if !ok {
		return nil, errors.New("no SHA256 field")
	}
	for _, line := range strings.Split(sums, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || len(f[0]) != 64 {
			return nil, fmt.Errorf("bad SHA256 line %q", line)
		}
		r.files[f[2]] = fileHash{sha256: strings.ToLower(f[0]), size: size}
	}
	return r, nil
}
