package vhd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/keelos/keel/internal/tooltest"
)

func openVHDX(t *testing.T, path string) *VHDXDisk {
	t.Helper()
	d, err := OpenVHDX(tooltest.Open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOpenVHDXRoundTrips reads back what WriteVHDX wrote and what qemu-img
// writes, so the reader is not checked against this package alone.
func TestOpenVHDXRoundTrips(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	want, err := os.ReadFile(padded(t, raw, testSize))
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(dir, "ours.vhdx")
	writeImage(t, WriteVHDX, raw, testSize, ours, testOpts)
	qemu := filepath.Join(dir, "qemu.vhdx")
	tooltest.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vhdx", padded(t, raw, testSize), qemu)
	for _, p := range []string{ours, qemu} {
		d := openVHDX(t, p)
		if d.Size() != int64(len(want)) {
			t.Fatalf("%s: Size %d, want %d", filepath.Base(p), d.Size(), len(want))
		}
		got := make([]byte, d.Size())
		if _, err := d.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: contents differ from the raw disk", filepath.Base(p))
		}
		const from, win = 2<<20 - 32<<10, 64 << 10
		if err := iotest.TestReader(io.NewSectionReader(d, from, win), want[from:from+win]); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
}

func TestOpenVHDXRefusesCorruption(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	out := filepath.Join(dir, "d.vhdx")
	writeImage(t, WriteVHDX, raw, testSize, out, testOpts)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		at   int
		want string
	}{
		{"identifier", 0, "vhdxfile"},
		{"region table", 3*xHeaderSection + 20, "region table is corrupt"},
	} {
		b := bytes.Clone(data)
		b[c.at] ^= 0xff
		if _, err := OpenVHDX(bytes.NewReader(b), int64(len(b))); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s flipped: err = %v, want one saying %q", c.name, err, c.want)
		}
	}
	if _, err := OpenVHDX(bytes.NewReader(data[:3<<20]), 3<<20); err == nil {
		t.Error("a truncated VHDX was accepted")
	}
}
