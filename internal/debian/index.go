package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"hash"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// index is the parsed Packages indexes of one suite and architecture.
type index struct {
	arch     string
	packages map[string][]*Package // by name, highest version first
	provides map[string][]provider // by virtual name, in name order
}

type provider struct {
	pkg     *Package
	version string // the version provided ("" when unversioned)
}

// index returns the parsed indexes of suite's components for arch, once
// per client.
func (c *Client) index(ctx context.Context, suite, arch string, components []string) (*index, error) {
	key := suite + "\x00" + arch + "\x00" + strings.Join(components, "\x00")
	c.mu.Lock()
	o := c.indexes[key]
	if o == nil {
		o = &onceValue[*index]{}
		c.indexes[key] = o
	}
	c.mu.Unlock()
	idx, err := o.get(func() (*index, error) { return c.loadIndex(ctx, suite, arch, components) })
	if err != nil {
		c.mu.Lock()
		if c.indexes[key] == o {
			delete(c.indexes, key)
		}
		c.mu.Unlock()
	}
	return idx, err
}

func (c *Client) loadIndex(ctx context.Context, suite, arch string, components []string) (*index, error) {
	rel, err := c.release(ctx, suite)
	if err != nil {
		return nil, err
	}
	idx := &index{arch: arch, packages: map[string][]*Package{}, provides: map[string][]provider{}}
	for _, comp := range components {
		if !rel.hasComponent(comp) {
			return nil, fmt.Errorf("suite %s: InRelease lists no component %q", suite, comp)
		}
		data, err := c.packagesFile(ctx, rel, comp, arch)
		if err != nil {
			return nil, err
		}
		if err := idx.add(data); err != nil {
			return nil, fmt.Errorf("suite %s: %s/binary-%s/Packages: %w", suite, comp, arch, err)
		}
	}
	idx.finish()
	return idx, nil
}

// hasComponent reports whether the release lists files of component comp.
func (r *release) hasComponent(comp string) bool {
	for name := range r.files {
		if strings.HasPrefix(name, comp+"/") {
			return true
		}
	}
	return false
}

// packagesFile returns the verified, uncompressed Packages index of one
// component. The store keeps it by the digest of its uncompressed form,
// which InRelease signs too, so a warm build neither downloads nor
// decompresses it.
func (c *Client) packagesFile(ctx context.Context, rel *release, comp, arch string) (string, error) {
	base := comp + "/binary-" + arch + "/Packages"
	plain, ok := rel.files[base]
	if !ok {
		return "", fmt.Errorf("suite %s: InRelease lists no %s (is %q an architecture of this suite?)", rel.suite, base, arch)
	}
	var compressed string
	for _, ext := range []string{".xz", ".gz", ""} {
		if _, ok := rel.files[base+ext]; ok {
			compressed = base + ext
			break
		}
	}
	want := rel.files[compressed]
	name := rel.suite + " " + compressed
	open := func(ctx context.Context) (io.ReadCloser, error) {
		rc, err := c.getReleaseFile(ctx, rel, compressed, want.sha256, name)
		if err != nil {
			return nil, err
		}
		return newVerifyingDecompressor(rc, compressed, want)
	}
	path, err := c.store.Fetch(ctx, "sha256:"+plain.sha256, plain.size, open)
	if err != nil {
		return "", fmt.Errorf("suite %s: fetching %s: %w", rel.suite, compressed, err)
	}
	data, err := readVerified(path, plain)
	if err != nil {
		return "", fmt.Errorf("suite %s: %s: %w", rel.suite, base, err)
	}
	return data, nil
}

// readVerified reads a file whole, checking it against want on the way.
// It reads into a strings.Builder because converting a 50 MB []byte to a
// string would copy it, which costs more than the parse.
func readVerified(path string, want fileHash) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var sb strings.Builder
	sb.Grow(int(want.size))
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(&sb, h), io.LimitReader(f, want.size+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if n != want.size || hex.EncodeToString(h.Sum(nil)) != want.sha256 {
		return "", fmt.Errorf("%s does not match the digest InRelease gives", path)
	}
	return sb.String(), nil
}

// getReleaseFile opens a file listed in InRelease, by hash when the mirror
// offers it so that a mirror update between InRelease and this request
// cannot mix versions.
func (c *Client) getReleaseFile(ctx context.Context, rel *release, path, sha, name string) (io.ReadCloser, error) {
	dists := c.mirror + "/dists/" + rel.suite + "/"
	if rel.byHash {
		dir := path[:strings.LastIndexByte(path, '/')+1]
		rc, err := c.get(ctx, dists+dir+"by-hash/SHA256/"+sha, name)
		var he *httpError
		if !errors.As(err, &he) || he.code != 404 {
			return rc, err
		}
	}
	return c.get(ctx, dists+path, name)
}

// verifyingDecompressor decompresses a download while hashing the
// compressed bytes; at the end of the stream it fails unless they match
// the InRelease entry.
type verifyingDecompressor struct {
	body   io.ReadCloser
	hashed io.Reader // body, through the hash and counter
	h      hash.Hash
	n      int64
	want   fileHash
	name   string
	out    io.Reader
}

func newVerifyingDecompressor(body io.ReadCloser, name string, want fileHash) (io.ReadCloser, error) {
	v := &verifyingDecompressor{body: body, h: sha256.New(), want: want, name: name}
	v.hashed = io.TeeReader(body, writerFunc(func(b []byte) (int, error) {
		v.n += int64(len(b))
		return v.h.Write(b)
	}))
	var err error
	switch {
	case strings.HasSuffix(name, ".xz"):
		v.out, err = xz.NewReader(v.hashed)
	case strings.HasSuffix(name, ".gz"):
		v.out, err = gzip.NewReader(v.hashed)
	default:
		v.out = v.hashed
	}
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

func (v *verifyingDecompressor) Read(b []byte) (int, error) {
	n, err := v.out.Read(b)
	if err == io.EOF {
		// Hash whatever trails the compressed stream too.
		if _, cerr := io.Copy(io.Discard, v.hashed); cerr != nil {
			return n, fmt.Errorf("%s: %w", v.name, cerr)
		}
		if v.n != v.want.size {
			return n, fmt.Errorf("%s: size %d, InRelease says %d", v.name, v.n, v.want.size)
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.sha256 {
			return n, fmt.Errorf("%s: SHA-256 %s, InRelease says %s", v.name, got, v.want.sha256)
		}
	} else if err != nil {
		err = fmt.Errorf("%s: %w", v.name, err)
	}
	return n, err
}

func (v *verifyingDecompressor) Close() error { return v.body.Close() }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// add parses one Packages index, keeping the packages of the index's
// architecture and "all".
func (idx *index) add(data string) error {
	return ParseParagraphs(data, func(p Paragraph) error {
		var pkg Package
		for _, f := range p {
			switch f.Name {
			case "Package":
				pkg.Name = f.Value
			case "Version":
				pkg.Version = f.Value
			case "Architecture":
				pkg.Arch = f.Value
			case "Source":
				pkg.Source = f.Value
			case "Filename":
				pkg.Filename = f.Value
			case "SHA256":
				pkg.SHA256 = f.Value
			case "Size":
				pkg.Size, _ = strconv.ParseInt(f.Value, 10, 64)
			case "Depends":
				pkg.Depends = f.Value
			case "Pre-Depends":
				pkg.PreDepends = f.Value
			case "Provides":
				pkg.Provides = f.Value
			}
		}
		if pkg.Name == "" || pkg.Version == "" {
			return fmt.Errorf("stanza without Package or Version (after %q)", pkg.Name)
		}
		if pkg.Arch != idx.arch && pkg.Arch != "all" {
			return nil
		}
		pkg.Source, pkg.SourceVersion = splitSource(pkg.Source, pkg.Name, pkg.Version)
		p2 := &pkg
		idx.packages[pkg.Name] = append(idx.packages[pkg.Name], p2)
		if pkg.Provides != "" {
			for _, clause := range parseRelations(pkg.Provides) {
				for _, alt := range clause {
					v := ""
					if alt.rel == "=" {
						v = alt.version
					}
					idx.provides[alt.name] = append(idx.provides[alt.name], provider{pkg: p2, version: v})
				}
			}
		}
		return nil
	})
}

// splitSource reads a Source field, "name" or "name (version)".
func splitSource(field, name, version string) (string, string) {
	if field == "" {
		return name, version
	}
	src, rest, ok := strings.Cut(field, " ")
	if !ok {
		return src, version
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
		return src, strings.TrimSpace(rest[1 : len(rest)-1])
	}
	return src, version
}

// finish orders candidates so that choices do not depend on index order.
func (idx *index) finish() {
	for _, ps := range idx.packages {
		sort.SliceStable(ps, func(i, j int) bool { return CompareVersions(ps[i].Version, ps[j].Version) > 0 })
	}
	for _, ps := range idx.provides {
		sort.SliceStable(ps, func(i, j int) bool {
			if ps[i].pkg.Name != ps[j].pkg.Name {
				return ps[i].pkg.Name < ps[j].pkg.Name
			}
			return CompareVersions(ps[i].pkg.Version, ps[j].pkg.Version) > 0
		})
	}
}
