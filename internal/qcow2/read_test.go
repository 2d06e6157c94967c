package qcow2

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/keelos/keel/internal/fuzzpatch"
	"github.com/keelos/keel/internal/tooltest"
)

func readAll(t *testing.T, r io.ReaderAt, size int64) []byte {
	t.Helper()
	buf := make([]byte, size)
	if n, err := r.ReadAt(buf, 0); n != len(buf) {
		t.Fatalf("read %d of %d: %v", n, size, err)
	}
	return buf
}

// TestReaderMatchesQemuImg compares the reader with qemu-img, on Write's
// qcow2 and on one qemu-img wrote (whose layout Write does not share:
// other allocation order, zero clusters).
func TestReaderMatchesQemuImg(t *testing.T) {
	tooltest.Need(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	disk := make([]byte, 5<<20+512)
	for i, off := range []int{0, 65536 - 7, 1 << 20, 3<<20 + 100, len(disk) - 300} {
		copy(disk[off:], bytes.Repeat([]byte{byte(i + 1)}, 300))
	}
	if err := os.WriteFile(raw, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	ours, theirs := filepath.Join(dir, "ours.qcow2"), filepath.Join(dir, "theirs.qcow2")
	tooltest.Convert(t, Write, raw, int64(len(disk)), ours)
	tooltest.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, theirs)
	for _, p := range []string{ours, theirs} {
		conv := filepath.Join(dir, "conv.raw")
		tooltest.Run(t, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", p, conv)
		want, err := os.ReadFile(conv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, disk) {
			t.Fatalf("%s: qemu-img's raw differs from the original", p)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		q, err := Open(f)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if q.Size() != int64(len(want)) {
			t.Fatalf("%s: size %d, qemu-img gives %d", p, q.Size(), len(want))
		}
		if got := readAll(t, q, q.Size()); !bytes.Equal(got, want) {
			t.Fatalf("%s: reader output differs from qemu-img convert -O raw", p)
		}
		// Unaligned reads across cluster boundaries and past the end.
		part := make([]byte, 100000)
		if n, err := q.ReadAt(part, 65536-7); n != len(part) || err != nil || !bytes.Equal(part, want[65536-7:65536-7+len(part)]) {
			t.Fatalf("%s: unaligned read: %d %v", p, n, err)
		}
		if n, err := q.ReadAt(part, q.Size()-10); n != 10 || err != io.EOF {
			t.Fatalf("%s: read past end: %d %v", p, n, err)
		}
	}
}

// checkReads reads windows of r, a disk of size bytes, and fails on a
// read that breaks io.ReaderAt's contract.
func checkReads(t *testing.T, r io.ReaderAt, size int64) {
	t.Helper()
	buf := make([]byte, 64<<10+333)
	for _, off := range []int64{0, size / 2, size - 100, size} {
		if off < 0 {
			continue
		}
		n, err := r.ReadAt(buf, off)
		if n < 0 || n > len(buf) || (n < len(buf) && err == nil) {
			t.Fatalf("ReadAt(%d bytes at %d) of a %d-byte disk = %d, %v", len(buf), off, size, n, err)
		}
	}
}

// qcow2Of is a disk with data in two clusters, written by Write.
func qcow2Of(t testing.TB) []byte {
	disk := make([]byte, 3<<20)
	copy(disk[100:], "first cluster")
	copy(disk[2<<20+5:], "a later one")
	var b bytes.Buffer
	if err := Write(&b, bytes.NewReader(disk), int64(len(disk))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzOpen mutates the header, the L1 table and the first L2 table of a
// qcow2 image, and truncates it: no input makes the reader panic, read
// more than io.ReaderAt allows, or allocate far more than it holds.
func FuzzOpen(f *testing.F) {
	img := qcow2Of(f)
	be := binary.BigEndian
	l1 := int(be.Uint64(img[40:]))
	l2 := int(be.Uint64(img[l1:]) & offsetMask)
	rs := fuzzpatch.Regions(0, 104, l1, 64, l2, 128)
	f.Add(fuzzpatch.Seed(img, rs), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		im := fuzzpatch.Apply(img, rs, data, cut)
		q, err := Open(im)
		if err != nil {
			return
		}
		checkReads(t, q, q.Size())
	})
}

// FuzzRoundTrip checks that Write and the reader agree on every disk.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("disk"), uint32(0))
	f.Add(bytes.Repeat([]byte{1}, 70000), uint32(1<<20))
	f.Fuzz(func(t *testing.T, data []byte, at uint32) {
		// The data lands at any offset of a disk of up to 4 MiB.
		disk := make([]byte, int(at%(4<<20))+len(data))
		copy(disk[at%(4<<20):], data)
		var b bytes.Buffer
		if err := Write(&b, bytes.NewReader(disk), int64(len(disk))); err != nil {
			t.Fatal(err)
		}
		q, err := Open(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, q.Size())
		if n, err := q.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
			t.Fatalf("read %d of %d: %v", n, len(got), err)
		}
		if int64(len(disk)) != q.Size() || !bytes.Equal(got, disk) {
			t.Fatalf("disk of %d bytes read back as %d bytes, or differs", len(disk), q.Size())
		}
	})
}
