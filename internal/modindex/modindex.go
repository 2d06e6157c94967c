// Package modindex keeps, in keel's cache, the module index of each kernel:
// every module file's name and dependencies as kmod.Parse reads them.
//
// Reading a module's .modinfo means decompressing the whole module (its
// section headers come last), and a distribution kernel has thousands of
// them: minutes of work that gives the same answer for the same files. So
// it is done once per set of module files and kept in DIR/<key>, where key
// is the SHA-256 of the files' paths and content digests; a build of the
// same kernel reads the index and opens no module.
//
// An entry is hostile input like any cache content: it carries the SHA-256
// of its body, which is checked before the body is parsed, and the body
// must list exactly the files it was looked up for, with well-formed module
// names. An entry that fails is removed, with a warning, and computed again.
package modindex

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/cachefile"
	"github.com/keelos/keel/internal/kmod"
)

// File is one module file of a kernel's module tree.
type File struct {
	Path   string // in the module tree, e.g. "kernel/drivers/net/virtio_net.ko.xz"
	Digest string // "sha256:<hex>" of its content
}

// Index is an open index directory.
type Index struct {
	dir  string
	warn func(msg string)
}

// Open opens (creating if needed) the index directory dir; warn receives
// a line for each corrupt entry that is replaced.
func Open(dir string, warn func(msg string)) (*Index, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("module index: %w", err)
	}
	return &Index{dir: dir, warn: warn}, nil
}

// format starts every entry and goes into every key: an entry written
// by a keel that parsed modules differently is never looked up.
const format = "keel-modindex 1\n"

// tempPrefix starts the names of entries being written.
const tempPrefix = ".put-"

// maxEntryPerFile bounds what is read of an entry: far more than a path,
// a digest, a name and its dependencies take.
const maxEntryPerFile = 8 << 10

// entry is the body of an index file.
type entry struct {
	Key     string   `json:"key"`
	Modules []module `json:"modules"`
}

type module struct {
	Path    string   `json:"path"`
	Digest  string   `json:"digest"`
	Name    string   `json:"name"`
	Depends []string `json:"depends,omitempty"`
}

// Modules returns the module of each of files, in their order: from the
// held entry for exactly these files when it is sound, else by parsing
// every file, read through open, and storing the result. progress is
// told before the files are parsed, which takes a while.
func (x *Index) Modules(ctx context.Context, files []File, open func(File) (io.ReadCloser, error), progress func(msg string)) ([]kmod.Module, error) {
	if len(files) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Path == sorted[i-1].Path {
			return nil, fmt.Errorf("module index: %s listed twice", sorted[i].Path)
		}
	}
	key := keyOf(sorted)
	p := filepath.Join(x.dir, strings.TrimPrefix(key, "sha256:"))
	mods, err := x.read(p, key, sorted)
	switch {
	case err == nil:
		return inOrder(files, mods), nil
	case errors.Is(err, fs.ErrNotExist):
	case errors.As(err, new(*corruptError)):
		if x.warn != nil {
			x.warn(fmt.Sprintf("module index: %s is corrupt (%v): removed; reading the kernel's modules again", p, err))
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("module index: %w", err)
		}
	default:
		return nil, fmt.Errorf("module index: %w", err)
	}

	if progress != nil {
		progress(fmt.Sprintf("reading the %d modules of this kernel (once; later builds use the index in %s)", len(files), x.dir))
	}
	mods = make([]module, len(sorted))
	for i, f := range sorted {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := parse(f, open)
		if err != nil {
			return nil, err
		}
		mods[i] = module{Path: f.Path, Digest: f.Digest, Name: m.Name, Depends: m.Depends}
	}
	if err := x.write(p, entry{Key: key, Modules: mods}); err != nil {
		return nil, fmt.Errorf("module index: %w", err)
	}
	return inOrder(files, mods), nil
}

func parse(f File, open func(File) (io.ReadCloser, error)) (kmod.Module, error) {
	rc, err := open(f)
	if err != nil {
		return kmod.Module{}, err
	}
	defer rc.Close()
	return kmod.Parse(f.Path, rc)
}

// keyOf names the entry of a sorted list of files.
func keyOf(sorted []File) string {
	h := sha256.New()
	io.WriteString(h, format)
	for _, f := range sorted {
		fmt.Fprintf(h, "%s\x00%s\n", f.Path, f.Digest)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// inOrder returns mods (sorted by path, one per file) as kmod.Modules in
// the order of files.
func inOrder(files []File, mods []module) []kmod.Module {
	out := make([]kmod.Module, len(files))
	for i, f := range files {
		j, _ := slices.BinarySearchFunc(mods, f.Path, func(m module, p string) int { return strings.Compare(m.Path, p) })
		m := mods[j]
		out[i] = kmod.Module{Name: m.Name, Path: m.Path, Depends: slices.Clone(m.Depends)}
	}
	return out
}

// corruptError says an entry is not what keel writes for its key.
type corruptError struct{ msg string }

func (e *corruptError) Error() string { return e.msg }

func corrupt(format string, args ...any) error {
	return &corruptError{fmt.Sprintf(format, args...)}
}

// read returns the modules the entry at p holds for key and sorted.
func (x *Index) read(p, key string, sorted []File) ([]module, error) {
	// Not through a symlink, and not blocking on a FIFO.
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, corrupt("not a regular file")
		}
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, corrupt("not a regular file")
	}
	limit := int64(len(format)) + 80 + int64(len(sorted)+1)*maxEntryPerFile
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, corrupt("larger than %d bytes", limit)
	}
	rest, ok := bytes.CutPrefix(data, []byte(format))
	if !ok {
		return nil, corrupt("no %q header", strings.TrimSpace(format))
	}
	sumLine, body, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return nil, corrupt("no checksum line")
	}
	sum := sha256.Sum256(body)
	if got := "sha256:" + hex.EncodeToString(sum[:]); string(sumLine) != got {
		return nil, corrupt("checksum mismatch: header says %.80q, body is %s", sumLine, got)
	}
	var e entry
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, corrupt("parsing: %v", err)
	}
	if dec.More() {
		return nil, corrupt("data after the index")
	}
	if e.Key != key {
		return nil, corrupt("it is the index of %.80q", e.Key)
	}
	if len(e.Modules) != len(sorted) {
		return nil, corrupt("%d modules, want %d", len(e.Modules), len(sorted))
	}
	for i, m := range e.Modules {
		if m.Path != sorted[i].Path || m.Digest != sorted[i].Digest {
			return nil, corrupt("module %d is %.200q (%s), want %s (%s)", i, m.Path, m.Digest, sorted[i].Path, sorted[i].Digest)
		}
		if err := checkModule(m); err != nil {
			return nil, corrupt("%s: %v", m.Path, err)
		}
	}
	return e.Modules, nil
}

// checkModule checks what Parse would give: canonical names, and sorted
// dependencies.
func checkModule(m module) error {
	if !isName(m.Name) {
		return fmt.Errorf("bad module name %.80q", m.Name)
	}
	for i, d := range m.Depends {
		if !isName(d) {
			return fmt.Errorf("bad dependency %.80q", d)
		}
		if i > 0 && d < m.Depends[i-1] {
			return errors.New("dependencies not sorted")
		}
	}
	return nil
}

// isName reports whether s is a canonical module name: what kmod.Canonical
// leaves of a name, limited as the kernel limits them (MODULE_NAME_LEN).
func isName(s string) bool {
	if s == "" || len(s) > 255 || s != kmod.Canonical(s) {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '/' {
			return false
		}
	}
	return true
}

// write stores e at p through a locked temporary, renamed into place, so
// that no reader sees half an entry.
func (x *Index) write(p string, e entry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	tmp, err := cachefile.CreateTemp(x.dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	// Closed only after the rename: its lock tells a cleaner it is in use.
	defer tmp.Close()
	defer os.Remove(tmp.Name()) // no-op once renamed
	w := bufio.NewWriter(tmp)
	fmt.Fprintf(w, "%ssha256:%s\n", format, hex.EncodeToString(sum[:]))
	w.Write(body)
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Clean removes the entries a killed keel left half written and reports
// how many files and bytes it freed.
func (x *Index) Clean() (int, int64, error) {
	n, freed, err := cachefile.RemoveStale(x.dir, func(name string) bool { return strings.HasPrefix(name, tempPrefix) })
	if err != nil {
		return n, freed, fmt.Errorf("module index: %w", err)
	}
	return n, freed, nil
}
