package squashfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/fstree/fstreetest"
	"github.com/keelos/keel/internal/tooltest"
)

func sample(t testing.TB) *fstree.Tree {
	t.Helper()
	return fstreetest.Sample(t)
}

func writeImage(t testing.TB, src fstree.Source, opts Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "root.squashfs")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := Write(f, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != n || n%4096 != 0 {
		t.Fatalf("Write returned %d, file is %d bytes (want a multiple of 4096)", n, st.Size())
	}
	return p
}

// TestUnsquashfsExtractsTheTree has squashfs-tools' unsquashfs read the
// superblock, list every inode and extract the image; the extracted tree
// must be the source tree: types, modes, owners, contents, link targets,
// device numbers, mtimes and hard links.
func TestUnsquashfsExtractsTheTree(t *testing.T) {
	tooltest.Need(t, "unsquashfs")
	for _, c := range []Compression{Zstd, Gzip} {
		t.Run(c.String(), func(t *testing.T) {
			tree := sample(t)
			img := writeImage(t, tree, Options{Compression: c, Epoch: fstreetest.Epoch})
			out := tooltest.Run(t, "unsquashfs", "-s", img)
			for _, want := range []string{"Compression " + map[Compression]string{Zstd: "zstd", Gzip: "gzip"}[c], "Block size 131072", "Filesystem is not exportable"} {
				if !strings.Contains(out, want) {
					t.Errorf("unsquashfs -s does not say %q:\n%s", want, out)
				}
			}
			list := tooltest.Run(t, "unsquashfs", "-lln", img)
			for _, want := range []string{
				"drwxr-xr-x 0/0", "-rwsr-xr-x 0/0", "lrwxrwxrwx 0/0",
				"squashfs-root/sh -> bin/a", "5,  1 2023-11-14 22:13 squashfs-root/dev/console",
				"-rw-r----- 1000/100", "drwxrwxrwt",
			} {
				if !strings.Contains(list, want) {
					t.Errorf("unsquashfs -lln lacks %q:\n%s", want, list)
				}
			}
			dir := filepath.Join(t.TempDir(), "x")
			tooltest.Run(t, "unsquashfs", "-no-progress", "-d", dir, img)
			fstreetest.Compare(t, tree, dir, fstreetest.Epoch)
		})
	}
}

// TestKernelMounts has the running kernel's squashfs driver read the
// image, where the test may mount it.
func TestKernelMounts(t *testing.T) {
	for _, c := range []Compression{Zstd, Gzip} {
		t.Run(c.String(), func(t *testing.T) {
			tree := sample(t)
			img := writeImage(t, tree, Options{Compression: c, Epoch: fstreetest.Epoch})
			fstreetest.Compare(t, tree, fstreetest.Mount(t, img, "squashfs"), fstreetest.Epoch)
		})
	}
}

// TestSameBytes: the same tree gives the same image whatever the number
// of compression workers.
func TestSameBytes(t *testing.T) {
	tree := sample(t)
	var images [][]byte
	for _, w := range []int{1, 3, 8} {
		b, err := os.ReadFile(writeImage(t, tree, Options{Epoch: fstreetest.Epoch, Workers: w}))
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, b)
	}
	for i := 1; i < len(images); i++ {
		if !bytes.Equal(images[0], images[i]) {
			t.Fatalf("image %d differs from image 0", i)
		}
	}
	other, err := os.ReadFile(writeImage(t, tree, Options{Epoch: fstreetest.Epoch + 1}))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(images[0], other) {
		t.Error("the epoch does not reach the image")
	}
}

// TestCorruptSourceFails: content that does not match its entry never
// reaches an image.
func TestCorruptSourceFails(t *testing.T) {
	tree := sample(t)
	bad := &lyingSource{Tree: tree}
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Write(f, bad, Options{}); err == nil || !strings.Contains(err.Error(), "bin/big") {
		t.Fatalf("Write of a source with a wrong size: %v, want an error naming bin/big", err)
	}
}

type lyingSource struct{ *fstree.Tree }

func (l *lyingSource) Entries() []*fstree.Entry {
	var out []*fstree.Entry
	for _, e := range l.Tree.Entries() {
		c := *e
		if c.Path == "bin/big" {
			c.Size++
		}
		out = append(out, &c)
	}
	return out
}

func TestRejectsMissingParent(t *testing.T) {
	src := &listSource{entries: []*fstree.Entry{{Path: "a/b", Mode: fs.ModeSymlink | 0o777, Linkname: "x"}}}
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Write(f, src, Options{}); err == nil {
		t.Fatal("no error for an entry whose parent is missing")
	}
}

type listSource struct {
	fstree.Tree
	entries []*fstree.Entry
}

func (l *listSource) Entries() []*fstree.Entry { return l.entries }

func BenchmarkWrite(b *testing.B) {
	tree := sample(b)
	dir := b.TempDir()
	b.SetBytes(tree.Size())
	for i := 0; i < b.N; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Write(f, tree, Options{}); err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Remove(f.Name())
	}
}
