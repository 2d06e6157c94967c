package build

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/keelos/keel/internal/fstree"
)

// NotReproducibleError reports the first difference between two builds of
// the same inputs.
type NotReproducibleError struct {
	Output string // the first output file that differs, by base name
	Offset int64  // its first differing byte; -1 when one build lacks it
	// Entry is the first file of the root file system that differs, and
	// How what differs about it; Entry is "" when the roots are the same
	// and the difference lies in how an output was written.
	Arch, Entry, How string
}

func (e *NotReproducibleError) Error() string {
	msg := "not reproducible: "
	if e.Offset < 0 {
		msg += e.Output + " was written by only one of the two builds"
	} else {
		msg += fmt.Sprintf("%s differs between the two builds from byte %d", e.Output, e.Offset)
	}
	if e.Entry != "" {
		msg += fmt.Sprintf("; first differing file in the %s root: /%s (%s)", e.Arch, e.Entry, e.How)
	} else {
		msg += "; the root file systems are identical, so the output writer is at fault"
	}
	return msg
}

// Rebuild runs the second build of Verify with opts and reports what it
// wrote. It must run it where the umask and the local time zone differ
// from the first build's, as on a second machine: in another process
// (keel runs itself as a child with umask 077 and a zone of UTC+13:45),
// since both are process-wide and the build must not change them for
// whatever else the process does.
type Rebuild func(ctx context.Context, opts Options) (*Result, error)

// Verify builds twice and fails with a *NotReproducibleError unless every
// output is bit-identical. The first build is an ordinary Run into
// opts.Dir. The second, run by rebuild, starts from an empty cache in a
// scratch directory (so every download is fetched and every package built
// again).
func Verify(ctx context.Context, opts Options, rebuild Rebuild) (*Result, error) {
	first, err := Run(ctx, opts)
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp("", "keel-verify-")
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer os.RemoveAll(scratch)

	second := opts
	second.Dir = filepath.Join(scratch, "out")
	second.CacheDir = filepath.Join(scratch, "cache")
	second.Locked = false // the first build checked build.lock already
	second.progress("verify: second build from an empty cache in " + scratch)
	other, err := rebuild(ctx, second)
	if err != nil {
		return nil, fmt.Errorf("verify: second build: %w", err)
	}
	if err := compareBuilds(first, other); err != nil {
		return nil, err
	}
	return first, nil
}

// compareBuilds compares the outputs of two builds by base name and, at
// the first that differs, the two roots entry by entry.
func compareBuilds(a, b *Result) error {
	paths := func(r *Result) map[string]string {
		m := map[string]string{}
		for _, o := range r.Outputs {
			m[filepath.Base(o.Path)] = o.Path
		}
		return m
	}
	pa, pb := paths(a), paths(b)
	names := slices.Sorted(maps.Keys(pa))
	for n := range pb {
		if _, ok := pa[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		var off int64 = -1
		if pa[n] != "" && pb[n] != "" {
			var err error
			if off, err = firstDifference(pa[n], pb[n]); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			if off < 0 {
				continue
			}
		}
		e := &NotReproducibleError{Output: n, Offset: off}
		for _, arch := range slices.Sorted(maps.Keys(a.Roots)) {
			if entry, how := firstEntryDifference(a.Roots[arch], b.Roots[arch]); entry != "" {
				e.Arch, e.Entry, e.How = arch, entry, how
				break
			}
		}
		return e
	}
	return nil
}

// firstDifference returns the offset of the first byte at which two files
// differ (a shorter file differs where it ends), or -1 if they are equal.
func firstDifference(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return 0, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return 0, err
	}
	defer fb.Close()
	ra, rb := bufio.NewReaderSize(fa, 1<<20), bufio.NewReaderSize(fb, 1<<20)
	bufA, bufB := make([]byte, 1<<16), make([]byte, 1<<16)
	var off int64
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if errA != nil && !errors.Is(errA, io.EOF) && !errors.Is(errA, io.ErrUnexpectedEOF) {
			return 0, errA
		}
		if errB != nil && !errors.Is(errB, io.EOF) && !errors.Is(errB, io.ErrUnexpectedEOF) {
			return 0, errB
		}
		n := min(na, nb)
		for i := range n {
			if bufA[i] != bufB[i] {
				return off + int64(i), nil
			}
		}
		if na != nb {
			return off + int64(n), nil
		}
		if errA != nil { // both ended here
			return -1, nil
		}
		off += int64(n)
	}
}

// firstEntryDifference names the first entry of a, in its order, that b
// lacks or holds differently, then any entry only b has; "" if the two
// roots are equal.
func firstEntryDifference(a, b []fstree.Entry) (entry, how string) {
	inB := make(map[string]*fstree.Entry, len(b))
	for i := range b {
		inB[b[i].Path] = &b[i]
	}
	inA := make(map[string]bool, len(a))
	for _, x := range a {
		inA[x.Path] = true
		y, ok := inB[x.Path]
		switch {
		case !ok:
			return x.Path, "only in the first build"
		case x.Mode != y.Mode:
			return x.Path, fmt.Sprintf("mode %v vs %v", x.Mode, y.Mode)
		case x.UID != y.UID || x.GID != y.GID:
			return x.Path, fmt.Sprintf("owner %d:%d vs %d:%d", x.UID, x.GID, y.UID, y.GID)
		case x.Digest != y.Digest || x.Size != y.Size:
			return x.Path, fmt.Sprintf("content %s (%d bytes) vs %s (%d bytes)", x.Digest, x.Size, y.Digest, y.Size)
		case x.Linkname != y.Linkname:
			return x.Path, fmt.Sprintf("link target %q vs %q", x.Linkname, y.Linkname)
		case x.Devmajor != y.Devmajor || x.Devminor != y.Devminor:
			return x.Path, fmt.Sprintf("device %d,%d vs %d,%d", x.Devmajor, x.Devminor, y.Devmajor, y.Devminor)
		case !maps.Equal(x.Xattrs, y.Xattrs):
			return x.Path, "extended attributes"
		}
	}
	for _, y := range b {
		if !inA[y.Path] {
			return y.Path, "only in the second build"
		}
	}
	return "", ""
}
