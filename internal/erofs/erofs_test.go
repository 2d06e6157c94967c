package erofs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/fstree/fstreetest"
	"github.com/keelos/keel/internal/tooltest"
)

func writeImage(t testing.TB, src fstree.Source, opts Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "root.erofs")
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

var testOpts = Options{Epoch: fstreetest.Epoch, UUID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Label: "keel-test"}

// TestFsckExtractsTheTree has erofs-utils check the image (superblock
// checksum, every inode and its data) and extract it; the extracted tree
// must be the source tree.
func TestFsckExtractsTheTree(t *testing.T) {
	tooltest.Need(t, "fsck.erofs")
	tree := fstreetest.Sample(t)
	img := writeImage(t, tree, testOpts)
	dir := filepath.Join(t.TempDir(), "x")
	tooltest.Run(t, "fsck.erofs", "--extract="+dir, img)
	fstreetest.Compare(t, tree, dir, fstreetest.Epoch, fstreetest.Lax{HardLinks: true, Setuid: true, Xattrs: true})
}

// TestDumpErofs: dump.erofs reads the superblock and the inodes as
// written.
func TestDumpErofs(t *testing.T) {
	tooltest.Need(t, "dump.erofs")
	tree := fstreetest.Sample(t)
	img := writeImage(t, tree, testOpts)
	sb := tooltest.Run(t, "dump.erofs", "-s", img)
	for _, want := range []string{"Filesystem magic number:", "0xE0F5E1E2", "Filesystem UUID:", "01020304-0506-0708-090a-0b0c0d0e0f10", "sb_csum"} {
		if !strings.Contains(sb, want) {
			t.Errorf("dump.erofs -s lacks %q:\n%s", want, sb)
		}
	}
	ino := tooltest.Run(t, "dump.erofs", "--path=/bin/a", img)
	// Layout 2 is FLAT_INLINE: the 13 bytes sit right after the inode.
	for _, want := range []string{"Size: 13", "Links: 3", "Layout: 2", "Access: 0755"} {
		if !strings.Contains(strings.ToLower(ino), strings.ToLower(want)) {
			t.Errorf("dump.erofs --path=/bin/a lacks %q:\n%s", want, ino)
		}
	}
	// What fsck.erofs's extraction leaves out: the xattrs are there,
	// 12 bytes of header and three padded entries.
	if x := tooltest.Run(t, "dump.erofs", "--path=/xattr/user", img); !strings.Contains(x, "Xattr size: 352") {
		t.Errorf("dump.erofs --path=/xattr/user: want 352 bytes of xattrs:\n%s", x)
	}
	// A file of 2.5 blocks of 128 KiB: whole 4 KiB blocks and a tail.
	big := tooltest.Run(t, "dump.erofs", "--path=/bin/big", img)
	if !strings.Contains(big, "Size: 322144") {
		t.Errorf("dump.erofs --path=/bin/big:\n%s", big)
	}
}

// TestKernelMounts has the running kernel's erofs driver read the image,
// where the test may mount it.
func TestKernelMounts(t *testing.T) {
	tree := fstreetest.Sample(t)
	img := writeImage(t, tree, testOpts)
	fstreetest.Compare(t, tree, fstreetest.Mount(t, img, "erofs"), fstreetest.Epoch)
}

func TestSameBytes(t *testing.T) {
	tree := fstreetest.Sample(t)
	a, err := os.ReadFile(writeImage(t, tree, testOpts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeImage(t, tree, testOpts))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two images of one tree differ")
	}
	o := testOpts
	o.Epoch++
	c, err := os.ReadFile(writeImage(t, tree, o))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Error("the epoch does not reach the image")
	}
}

type lyingSource struct{ *fstree.Tree }

func (l *lyingSource) Entries() []*fstree.Entry {
	var out []*fstree.Entry
	for _, e := range l.Tree.Entries() {
		c := *e
		if c.Path == "bin/big" {
			c.Size--
		}
		out = append(out, &c)
	}
	return out
}

func TestCorruptSourceFails(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Write(f, &lyingSource{fstreetest.Sample(t)}, testOpts); err == nil || !strings.Contains(err.Error(), "bin/big") {
		t.Fatalf("Write of a source with a wrong size: %v, want an error naming bin/big", err)
	}
}

func BenchmarkWrite(b *testing.B) {
	tree := fstreetest.Sample(b)
	dir := b.TempDir()
	b.SetBytes(tree.Size())
	for i := 0; i < b.N; i++ {
		f, err := os.Create(filepath.Join(dir, "img"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Write(f, tree, testOpts); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
