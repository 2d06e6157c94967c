// Package lock reads and writes build.lock: the resolved digest of every
// image and the SHA-256 of every .deb a build used, so a later build can
// reproduce the same bytes (or, with --locked, refuse to differ).
package lock

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/keelos/keel/internal/hostfile"
)

// FileName is the lock file's name, written next to the first spec.
const FileName = "build.lock"

// File is the content of a build.lock.
type File struct {
	Images []Image `toml:"image,omitempty"`
	Debs   []Deb   `toml:"deb,omitempty"`
	// Debian pins what each [debian] section of a local package resolved
	// to, so a locked build takes the packages from here and never reads
	// a mirror's indexes.
	Debian []DebianSet `toml:"debian,omitempty"`
}

// DebianSet is one [debian] section's request, for one Debian
// architecture, and the packages it resolved to.
type DebianSet struct {
	Suite      string      `toml:"suite"`
	Arch       string      `toml:"arch"`
	Components []string    `toml:"components,omitempty"` // empty: the client's default
	Packages   []string    `toml:"packages"`
	Exclude    []string    `toml:"exclude,omitempty"`
	Debs       []PinnedDeb `toml:"deb"`
}

// PinnedDeb is one resolved package, with what fetching and labelling it
// need: its path on the mirror and its source package.
type PinnedDeb struct {
	Name          string `toml:"name"`
	Version       string `toml:"version"`
	Arch          string `toml:"arch"`
	Source        string `toml:"source,omitempty"`         // empty: Name
	SourceVersion string `toml:"source-version,omitempty"` // empty: Version
	Filename      string `toml:"filename"`
	Size          int64  `toml:"size"`
	SHA256        string `toml:"sha256"`
}

// Sort puts the request's names in order, which resolution does not
// depend on, and the packages by name.
func (s *DebianSet) Sort() {
	s.Packages = slices.Compact(slices.Sorted(slices.Values(s.Packages)))
	s.Exclude = slices.Compact(slices.Sorted(slices.Values(s.Exclude)))
	slices.SortFunc(s.Debs, func(a, b PinnedDeb) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Version, b.Version))
	})
}

// request names the set's request, the key it is looked up by.
func (s DebianSet) request() string {
	return fmt.Sprintf("suite %s, %s, components [%s], packages [%s], exclude [%s]", s.Suite, s.Arch,
		strings.Join(s.Components, " "), strings.Join(s.Packages, " "), strings.Join(s.Exclude, " "))
}

// String names the request, as errors show it.
func (s DebianSet) String() string {
	r := fmt.Sprintf("[debian] suite %s (%s) packages %s", s.Suite, s.Arch, strings.Join(s.Packages, " "))
	if len(s.Components) > 0 {
		r += ", components " + strings.Join(s.Components, " ")
	}
	if len(s.Exclude) > 0 {
		r += ", exclude " + strings.Join(s.Exclude, " ")
	}
	return r
}

// DebianPins returns the locked set of the request req (whose Debs are
// ignored), after sorting req as Sort does.
func (f File) DebianPins(req DebianSet) (DebianSet, bool) {
	req.Sort()
	for _, s := range f.Debian {
		if s.request() == req.request() {
			return s, true
		}
	}
	return DebianSet{}, false
}

// Archs are the architectures the file has images for, sorted.
func (f File) Archs() []string {
	var out []string
	for _, im := range f.Images {
		if !slices.Contains(out, im.Arch) {
			out = append(out, im.Arch)
		}
	}
	slices.Sort(out)
	return out
}

// Image is one image reference resolved for one architecture.
type Image struct {
	Ref    string `toml:"ref"`
	Arch   string `toml:"arch"`
	Digest string `toml:"digest"` // "sha256:<hex>" of the platform image manifest
}

// Deb is one Debian package a build unpacked.
type Deb struct {
	Name    string `toml:"name"`
	Version string `toml:"version"`
	Arch    string `toml:"arch"`
	SHA256  string `toml:"sha256"` // hex
}

// Sort orders the entries and drops exact duplicates, so equal content
// always serialises to equal bytes.
func (f *File) Sort() {
	slices.SortFunc(f.Images, func(a, b Image) int {
		return cmp.Or(cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Digest, b.Digest))
	})
	f.Images = slices.Compact(f.Images)
	slices.SortFunc(f.Debs, func(a, b Deb) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.SHA256, b.SHA256))
	})
	f.Debs = slices.Compact(f.Debs)
	for i := range f.Debian {
		f.Debian[i].Sort()
	}
	slices.SortStableFunc(f.Debian, func(a, b DebianSet) int { return cmp.Compare(a.request(), b.request()) })
	f.Debian = slices.CompactFunc(f.Debian, func(a, b DebianSet) bool {
		return a.request() == b.request() && slices.Equal(a.Debs, b.Debs)
	})
}

// Marshal returns the lock file's bytes: sorted, deterministic.
func (f File) Marshal() ([]byte, error) {
	f.Images = slices.Clone(f.Images)
	f.Debs = slices.Clone(f.Debs)
	f.Debian = slices.Clone(f.Debian)
	f.Sort()
	var buf bytes.Buffer
	buf.WriteString("# build.lock: written by `keel lock`; `keel build --locked` refuses to differ.\n\n")
	enc := toml.NewEncoder(&buf)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encoding lock file: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes f to path atomically (via a temporary file and rename).
func Write(path string, f File) error {
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ErrNoLock is returned by Read when the lock file does not exist.
var ErrNoLock = errors.New("no lock file")

// Read parses the lock file at path, rejecting unknown keys. The file is
// read as hostfile reads what a spec names: a regular file, not through a
// symlink out of its directory.
func Read(ctx context.Context, path string) (File, error) {
	data, err := hostfile.ReadFile(ctx, filepath.Dir(path), filepath.Base(path))
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, fmt.Errorf("%s: %w", path, ErrNoLock)
	}
	if err != nil {
		return File{}, fmt.Errorf("reading lock file: %w", err)
	}
	var f File
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) && len(sm.Errors) > 0 {
			de := sm.Errors[0]
			row, col := de.Position()
			return File{}, fmt.Errorf("%s:%d:%d: unknown key %s", path, row, col, strings.Join(de.Key(), "."))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return File{}, fmt.Errorf("%s:%d:%d: %s", path, row, col, de.Error())
		}
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.check(); err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	f.Sort()
	return f, nil
}

// check refuses pins a locked build could not use safely: a file name
// that leaves the mirror, a digest or size that is not one.
func (f File) check() error {
	for _, s := range f.Debian {
		for _, d := range s.Debs {
			if !fs.ValidPath(d.Filename) || !strings.HasSuffix(d.Filename, ".deb") {
				return fmt.Errorf("%s: deb %s: filename %q is not a .deb path inside the mirror", s, d.Name, d.Filename)
			}
			if len(d.SHA256) != 64 || strings.Trim(d.SHA256, "0123456789abcdef") != "" {
				return fmt.Errorf("%s: deb %s: sha256 %q is not 64 lower-case hex digits", s, d.Name, d.SHA256)
			}
			if d.Size < 0 || d.Name == "" || d.Version == "" || d.Arch == "" {
				return fmt.Errorf("%s: deb %q: needs a name, version, arch and a size of at least 0", s, d.Name)
			}
		}
	}
	return nil
}

// Image returns the locked digest of ref for arch.
func (f File) Image(ref, arch string) (string, bool) {
	for _, im := range f.Images {
		if im.Ref == ref && im.Arch == arch {
			return im.Digest, true
		}
	}
	return "", false
}

// Diff lists, one line each, what differs between the locked state and
// what a build resolved: changed digests or versions, entries the build
// no longer uses and entries missing from the lock. No lines means equal.
func Diff(locked, resolved File) []string {
	var out []string
	type imgKey struct{ ref, arch string }
	lockedImgs := map[imgKey]string{}
	for _, im := range locked.Images {
		lockedImgs[imgKey{im.Ref, im.Arch}] = im.Digest
	}
	seen := map[imgKey]bool{}
	res := slices.Clone(resolved.Images)
	slices.SortFunc(res, func(a, b Image) int { return cmp.Or(cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.Arch, b.Arch)) })
	for _, im := range res {
		k := imgKey{im.Ref, im.Arch}
		seen[k] = true
		d, ok := lockedImgs[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("image %s (%s): not in the lock file (resolved %s)", im.Ref, im.Arch, im.Digest))
		case d != im.Digest:
			out = append(out, fmt.Sprintf("image %s (%s): locked %s, resolved %s", im.Ref, im.Arch, d, im.Digest))
		}
	}
	lk := slices.Clone(locked.Images)
	slices.SortFunc(lk, func(a, b Image) int { return cmp.Or(cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.Arch, b.Arch)) })
	for _, im := range lk {
		if !seen[imgKey{im.Ref, im.Arch}] {
			out = append(out, fmt.Sprintf("image %s (%s): locked but no longer used", im.Ref, im.Arch))
		}
	}

	type debKey struct{ name, arch string }
	lockedDebs := map[debKey]Deb{}
	for _, d := range locked.Debs {
		lockedDebs[debKey{d.Name, d.Arch}] = d
	}
	seenDebs := map[debKey]bool{}
	rd := slices.Clone(resolved.Debs)
	slices.SortFunc(rd, func(a, b Deb) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch)) })
	for _, d := range rd {
		k := debKey{d.Name, d.Arch}
		seenDebs[k] = true
		l, ok := lockedDebs[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("deb %s (%s): not in the lock file (resolved %s, sha256 %s)", d.Name, d.Arch, d.Version, d.SHA256))
		case l.Version != d.Version:
			out = append(out, fmt.Sprintf("deb %s (%s): locked version %s, resolved %s", d.Name, d.Arch, l.Version, d.Version))
		case l.SHA256 != d.SHA256:
			out = append(out, fmt.Sprintf("deb %s (%s) %s: locked sha256 %s, resolved %s", d.Name, d.Arch, d.Version, l.SHA256, d.SHA256))
		}
	}
	ld := slices.Clone(locked.Debs)
	slices.SortFunc(ld, func(a, b Deb) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch)) })
	for _, d := range ld {
		if !seenDebs[debKey{d.Name, d.Arch}] {
			out = append(out, fmt.Sprintf("deb %s (%s): locked but no longer used", d.Name, d.Arch))
		}
	}

	lockedSets := map[string]DebianSet{}
	for _, s := range locked.Debian {
		s.Sort()
		lockedSets[s.request()] = s
	}
	rs := slices.Clone(resolved.Debian)
	slices.SortFunc(rs, func(a, b DebianSet) int { return cmp.Compare(a.request(), b.request()) })
	for _, s := range rs {
		s.Sort()
		l, ok := lockedSets[s.request()]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: not in the lock file", s))
		case !slices.Equal(l.Debs, s.Debs):
			out = append(out, fmt.Sprintf("%s: resolves to other packages than the lock file pins", s))
		}
	}
	// A locked set no longer used is not a difference: which sections a
	// build resolves depends on its formats (keel's tool packages), and
	// the lock holds those of every format.
	return out
}
