package vhd

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/tooltest"
)

func TestQemuImgAcceptsVHDX(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	out := filepath.Join(dir, "disk.vhdx")
	writeImage(t, WriteVHDX, raw, testSize, out, testOpts)

	check := tooltest.Run(t, "qemu-img", "check", "-f", "vhdx", out)
	if !strings.Contains(check, "No errors were found") {
		t.Errorf("qemu-img check:\n%s", check)
	}
	format, vsize := qemuInfo(t, "vhdx", out)
	if format != "vhdx" || vsize != 32<<20 {
		t.Errorf("qemu-img info: format %q, virtual size %d; want vhdx, %d", format, vsize, 32<<20)
	}
	tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vhdx", padded(t, raw, testSize), out)

	// 3 MiB of headers, log and metadata, a 1 MiB BAT, and the five 1 MiB
	// blocks that hold data (the write at 2 MiB - 100 touches two).
	if got, want := fileSize(t, out), int64(9<<20); got != want {
		t.Errorf("file size %d, want %d", got, want)
	}
}

// TestVHDXSectorBitmapEntries writes a disk past one chunk of payload
// blocks, so the BAT interleaves a sector bitmap entry, and data on both
// sides of it must still land where qemu looks.
func TestVHDXSectorBitmapEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("qemu-img compares a 4 GiB disk")
	}
	dir := t.TempDir()
	const size = (xChunkRatio+3)*xBlockSize - 512
	src := sparseSource{size: size, data: map[int64]byte{
		(xChunkRatio - 1) * xBlockSize: 1, // last block of the first chunk
		xChunkRatio * xBlockSize:       2, // first block of the second
		size - 1:                       3,
	}}
	// qemu-img compares against a sparse file with the same bytes.
	raw := filepath.Join(dir, "big.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range src.data {
		if _, err := f.WriteAt([]byte{b}, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	out := filepath.Join(dir, "big.vhdx")
	img, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := WriteVHDX(img, src, size, testOpts); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "qemu-img", "check", "-f", "vhdx", out)
	// The virtual size is only the last partial sector longer, and
	// qemu-img compare accepts a longer image whose excess is zero.
	tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vhdx", raw, out)

	bat := make([]byte, 8*(xChunkRatio+4))
	if _, err := img.ReadAt(bat, xBATOffset); err != nil {
		t.Fatal(err)
	}
	if sb := binary.LittleEndian.Uint64(bat[8*xChunkRatio:]); sb != 0 {
		t.Errorf("sector bitmap entry %#x, want 0 (not present)", sb)
	}
	for _, e := range []int{xChunkRatio - 1, xChunkRatio + 1, xChunkRatio + 3} {
		if st := binary.LittleEndian.Uint64(bat[8*e:]) & 7; st != xBlockFullyPresent {
			t.Errorf("BAT entry %d state %d, want fully present", e, st)
		}
	}
}

// sparseSource is a disk of zeros but for a few bytes, served from memory
// so a multi-GiB disk costs no I/O.
type sparseSource struct {
	size int64
	data map[int64]byte
}

func (s sparseSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), s.size-off)
	clear(p[:n])
	for at, b := range s.data {
		if at >= off && at < off+n {
			p[at-off] = b
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}
