package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	var data []byte
	var err error
	if c.offline {
		if data, err = c.keptRelease(suite); err != nil {
			return nil, fmt.Errorf("suite %s: %w", suite, err)
		}
		url = "the kept InRelease of " + url
	} else if data, err = c.downloadRelease(ctx, url, suite); err != nil {
		return nil, fmt.Errorf("suite %s: %w", suite, err)
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
	if !c.offline {
		if err := c.keepRelease(suite, data); err != nil {
			return nil, fmt.Errorf("suite %s: %w", suite, err)
		}
	}
	return r, nil
}

// downloadRelease reads the InRelease at url, bounded. A mirror that
// cannot be connected to is an UnreachableError.
func (c *Client) downloadRelease(ctx context.Context, addr, suite string) ([]byte, error) {
	rc, err := c.get(ctx, addr, suite+"/InRelease")
	var ue *url.Error
	if errors.As(err, &ue) && ctx.Err() == nil {
		return nil, &UnreachableError{Mirror: c.mirror, Err: ue.Err}
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxInRelease+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", addr, err)
	}
	if len(data) > maxInRelease {
		return nil, fmt.Errorf("%s is larger than %d bytes", addr, maxInRelease)
	}
	return data, nil
}

// keptReleaseName is the file, under the release directory, that holds
// the last verified InRelease of suite from this mirror.
func (c *Client) keptReleaseName(suite string) string {
	sum := sha256.Sum256([]byte(c.mirror + "\x00" + suite))
	return hex.EncodeToString(sum[:]) + ".InRelease"
}

// keepRelease records data, a verified InRelease of suite, for offline
// use: written to a temporary file and renamed, so a reader never sees
// half of one.
func (c *Client) keepRelease(suite string, data []byte) error {
	if c.releaseDir == "" {
		return nil
	}
	if err := os.MkdirAll(c.releaseDir, 0o755); err != nil {
		return fmt.Errorf("keeping InRelease: %w", err)
	}
	tmp, err := os.CreateTemp(c.releaseDir, ".InRelease-*")
	if err != nil {
		return fmt.Errorf("keeping InRelease: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(c.releaseDir, c.keptReleaseName(suite)))
	}
	if err != nil {
		return fmt.Errorf("keeping InRelease: %w", err)
	}
	return nil
}

// keptRelease returns the InRelease keepRelease recorded for suite, read
// as untrusted (the caller verifies its signature): a regular file, not
// through a symlink, bounded.
func (c *Client) keptRelease(suite string) ([]byte, error) {
	missing := fmt.Errorf("%w: no InRelease of %s from %s was kept by an online run", ErrOffline, suite, c.mirror)
	if c.releaseDir == "" {
		return nil, missing
	}
	f, err := os.OpenFile(filepath.Join(c.releaseDir, c.keptReleaseName(suite)), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missing
	}
	if err != nil {
		return nil, fmt.Errorf("reading the kept InRelease: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the kept InRelease %s is not a regular file", f.Name())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxInRelease+1))
	if err != nil {
		return nil, fmt.Errorf("reading the kept InRelease: %w", err)
	}
	if len(data) > maxInRelease {
		return nil, fmt.Errorf("the kept InRelease %s is larger than %d bytes", f.Name(), maxInRelease)
	}
	return data, nil
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
