package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/initramfs"
	"github.com/keelos/keel/internal/layout"
)

// rootTree is the reference image's root, read back from its .tar output.
type rootTree struct {
	tree   *fstree.Tree
	tar    string
	kernel string // the kernel+initrd output's kernel
	initrd string
	raw    string // the raw-efi disk
	uki    string
}

func loadRoot(cfg *config, outputs string) (*rootTree, error) {
	base := filepath.Join(outputs, "host-"+cfg.arch)
	if m, _ := filepath.Glob(filepath.Join(outputs, "*-"+cfg.arch+".tar")); len(m) == 1 {
		base = strings.TrimSuffix(m[0], ".tar")
	}
	r := &rootTree{
		tar:    base + ".tar",
		kernel: base + "-kernel",
		initrd: base + "-initrd.img",
		raw:    base + "-efi.raw",
		uki:    base + ".efi",
	}
	store, err := fstree.NewStore(filepath.Join(cfg.work, "store"))
	if err != nil {
		return nil, err
	}
	r.tree = fstree.New(store)
	f, err := os.Open(r.tar)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := r.tree.ApplyTar(f, fstree.ApplyOptions{AllowDevices: true}); err != nil {
		return nil, fmt.Errorf("%s: %w", r.tar, err)
	}
	return r, nil
}

// part names what a root path belongs to.
func part(p string) string {
	switch {
	case p == layout.Init || p == layout.KeelCtl:
		return "init (/init, keel-ctl)"
	case p == "lib/modules" || strings.HasPrefix(p, "lib/modules/"):
		return "modules (/lib/modules)"
	case strings.HasPrefix(p, "containers/"):
		if f := strings.SplitN(p, "/", 4); len(f) >= 3 {
			return "/" + strings.Join(f[:3], "/")
		}
	}
	return "other (/etc, /dev, dirs)"
}

// subtree is some entries of a tree, as a Source for the writers.
type subtree struct {
	t       *fstree.Tree
	entries []*fstree.Entry
}

func (s *subtree) Entries() []*fstree.Entry { return s.entries }

func (s *subtree) Open(e *fstree.Entry) (io.ReadCloser, error) { return s.t.Open(e) }

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func sizes(rep *report, outputs string, root *rootTree) error {
	logf("sizes")
	s := rep.add("outputs of the reference image", "FILE", "BYTES", "SIZE")
	ents, err := os.ReadDir(outputs)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			n := fileSize(filepath.Join(outputs, e.Name()))
			s.row(e.Name(), fmt.Sprint(n), mib(n))
		}
	}
	cpio, err := uncompressedSize(root.initrd)
	if err != nil {
		return err
	}
	s.row("initramfs, uncompressed cpio", fmt.Sprint(cpio), mib(cpio))

	// What the root holds, part by part; each part's compressed size is
	// that part alone written by keel's initramfs writer (zstd, as keel).
	type acc struct {
		files   int
		bytes   int64
		entries []*fstree.Entry
	}
	parts := map[string]*acc{}
	var total int64
	for _, e := range root.tree.Entries() {
		name := part(e.Path)
		a := parts[name]
		if a == nil {
			a = &acc{}
			parts[name] = a
		}
		a.entries = append(a.entries, e)
		if e.Mode.IsRegular() {
			a.files++
			a.bytes += e.Size
			total += e.Size
		}
	}
	kernel := fileSize(root.kernel)
	initrd := fileSize(root.initrd)
	boot := kernel + initrd
	t := rep.add("what the image is made of (kernel + root)", "PART", "FILES", "BYTES", "% OF ROOT", "ZSTD BYTES", "% OF KERNEL+INITRD")
	t.row("kernel (separate file)", "1", fmt.Sprint(kernel), "-", fmt.Sprint(kernel), percent(kernel, boot))
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	// Largest first, "other" last.
	slices.SortFunc(names, func(a, b string) int {
		if oa, ob := strings.HasPrefix(a, "other"), strings.HasPrefix(b, "other"); oa != ob {
			if oa {
				return 1
			}
			return -1
		}
		return int(parts[b].bytes - parts[a].bytes)
	})
	zparts := map[string]int64{}
	var zsum int64
	for _, n := range names {
		var c counter
		if err := initramfs.Write(&c, &subtree{t: root.tree, entries: parts[n].entries}, initramfs.Zstd); err != nil {
			return fmt.Errorf("compress %s: %w", n, err)
		}
		zparts[n] = c.n
		zsum += c.n
	}
	// The real initramfs compresses across parts, so the standalone sizes
	// add up to more than it: split its size in their proportions.
	for _, n := range names {
		a := parts[n]
		share := int64(float64(initrd) * float64(zparts[n]) / float64(zsum))
		t.row(n, fmt.Sprint(a.files), fmt.Sprint(a.bytes), percent(a.bytes, total), fmt.Sprint(zparts[n]), percent(share, boot))
	}
	t.row("root total (the initramfs)", fmt.Sprint(len(root.tree.Entries())), fmt.Sprint(total), percent(total, total), fmt.Sprint(initrd), percent(initrd, boot))
	t.note("BYTES: file contents in the root, from the .tar output (a file with several names counts for each).")
	t.note("ZSTD BYTES: the part alone, written as keel writes the initramfs (newc + zstd); the parts add up to")
	t.note("%d as compression works across them in the real %s; the last column", zsum, filepath.Base(root.initrd))
	t.note("splits that file's real size (%d) in their proportions.", initrd)
	return nil
}

func uncompressedSize(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	d, err := zstd.NewReader(f, zstd.WithDecoderMaxWindow(1<<30))
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n, err := io.Copy(io.Discard, d)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return n, nil
}
