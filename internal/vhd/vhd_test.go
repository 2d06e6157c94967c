package vhd

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/keelos/keel/internal/tooltest"
)

// testSize is deliberately neither a MiB nor a sector multiple, so every
// writer has to pad.
const testSize = 31<<20 + 1000

var testOpts = Options{
	UUID:  [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x41, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8},
	Mtime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
}

// testRaw writes a mostly-empty raw disk: data in the first sector, across
// the 2 MiB boundary between the first two VHD blocks, in the middle, and
// in the last, partial, sector.
func testRaw(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(testSize); err != nil {
		t.Fatal(err)
	}
	for i, off := range []int64{0, 2<<20 - 100, 9 << 20, testSize - 300} {
		if _, err := f.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 300), off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// padded is a copy of raw grown with zeros to the VHD's virtual size, the
// disk qemu-img should see inside the VHD.
func padded(t *testing.T, raw string, size int64) string {
	t.Helper()
	data, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := raw + ".padded"
	data = append(data, make([]byte, VirtualSize(size)-int64(len(data)))...)
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

type writeFunc func(io.Writer, io.ReaderAt, int64, Options) error

func writeImage(t testing.TB, write writeFunc, raw string, size int64, out string, opts Options) {
	t.Helper()
	tooltest.Convert(t, func(w io.Writer, src io.ReaderAt, size int64) error { return write(w, src, size, opts) }, raw, size, out)
}

// qemuInfo is what `qemu-img info` says about an image, read as the given
// format (vpc is never probed for a fixed VHD, whose first bytes are data).
func qemuInfo(t *testing.T, format, path string) (gotFormat string, virtualSize int64) {
	t.Helper()
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	out := tooltest.Run(t, "qemu-img", "info", "-f", format, "--output=json", path)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	return info.Format, info.VirtualSize
}

// qemuCheck runs `qemu-img check`, which qemu implements for some formats
// only; for the others it falls back to `qemu-img info` having opened the
// image, which makes qemu validate the footer, header and BAT.
func qemuCheck(t *testing.T, format, path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "check", "-f", format, path).CombinedOutput()
	switch {
	case err == nil && strings.Contains(string(out), "No errors were found"):
	case strings.Contains(string(out), "does not support checks"):
		if f, _ := qemuInfo(t, format, path); f != format {
			t.Errorf("qemu-img info reads %s as %q", path, f)
		}
	default:
		t.Errorf("qemu-img check -f %s: %v\n%s", format, err, out)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestQemuImgReadsFixed(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	out := filepath.Join(dir, "fixed.vhd")
	writeImage(t, WriteFixed, raw, testSize, out, testOpts)

	qemuCheck(t, "vpc", out)
	format, vsize := qemuInfo(t, "vpc", out)
	if format != "vpc" || vsize != 32<<20 {
		t.Errorf("qemu-img info: format %q, virtual size %d; want vpc, %d", format, vsize, 32<<20)
	}
	tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vpc", padded(t, raw, testSize), out)
	if got, want := fileSize(t, out), int64(32<<20+footerSize); got != want {
		t.Errorf("file size %d, want %d (32 MiB of data and the footer)", got, want)
	}
}

func TestQemuImgReadsDynamic(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	out := filepath.Join(dir, "dynamic.vhd")
	writeImage(t, WriteDynamic, raw, testSize, out, testOpts)

	qemuCheck(t, "vpc", out)
	format, vsize := qemuInfo(t, "vpc", out)
	if format != "vpc" || vsize != 32<<20 {
		t.Errorf("qemu-img info: format %q, virtual size %d; want vpc, %d", format, vsize, 32<<20)
	}
	tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vpc", padded(t, raw, testSize), out)

	// Blocks 0, 1, 4 and 15 of 16 hold data; the 16-entry BAT takes one
	// sector.
	want := int64(footerSize + dynHeaderSize + sectorSize + 4*(bitmapSize+blockSize) + footerSize)
	if got := fileSize(t, out); got != want {
		t.Errorf("file size %d, want %d", got, want)
	}
}

func TestDynamicSmallerThanFixed(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	fixed, dynamic := filepath.Join(dir, "f.vhd"), filepath.Join(dir, "d.vhd")
	writeImage(t, WriteFixed, raw, testSize, fixed, testOpts)
	writeImage(t, WriteDynamic, raw, testSize, dynamic, testOpts)
	if f, d := fileSize(t, fixed), fileSize(t, dynamic); d*3 > f {
		t.Errorf("dynamic VHD is %d bytes, fixed %d: want well under a third for a disk 4/16 full", d, f)
	}
}

// TestGeometryMatchesQemu checks the CHS algorithm against qemu's own
// implementation of the spec's: qemu-img rounds the size up to a geometry
// and stores both, so the geometry of qemu's stored size must be qemu's.
// The last two sizes are past what CHS can address, where both cap.
func TestGeometryMatchesQemu(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []string{"1M", "100M", "1G", "3G", "40G", "130G", "300G"} {
		path := filepath.Join(dir, size+".vhd")
		tooltest.Run(t, "qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", path, size)
		f, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cur := binary.BigEndian.Uint64(f[48:])
		c, h, s := geometry(int64(cur / sectorSize))
		qc, qh, qs := binary.BigEndian.Uint16(f[56:]), f[58], f[59]
		if c != qc || h != qh || s != qs {
			t.Errorf("%s (%d sectors): geometry %d/%d/%d, qemu-img %d/%d/%d", size, cur/sectorSize, c, h, s, qc, qh, qs)
		}
	}
}

// readAll reads d in chunks that straddle block boundaries at varying
// offsets.
func readAll(t *testing.T, d *Disk) []byte {
	t.Helper()
	out := make([]byte, d.Size())
	const chunk = 1<<20 + 333
	for off := int64(0); off < d.Size(); off += chunk {
		n, err := d.ReadAt(out[off:min(off+chunk, d.Size())], off)
		if err != nil || int64(n) != min(chunk, d.Size()-off) {
			t.Fatalf("ReadAt(%d): %d, %v", off, n, err)
		}
	}
	return out
}

func openFile(t *testing.T, path string) *Disk {
	t.Helper()
	d, err := Open(tooltest.Open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpenRoundTrips(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	want, err := os.ReadFile(padded(t, raw, testSize))
	if err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]writeFunc{"fixed": WriteFixed, "dynamic": WriteDynamic} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name+".vhd")
			writeImage(t, write, raw, testSize, out, testOpts)
			d := openFile(t, out)
			if d.Size() != int64(len(want)) {
				t.Fatalf("Size %d, want %d", d.Size(), len(want))
			}
			if !bytes.Equal(readAll(t, d), want) {
				t.Fatal("contents differ from the raw disk")
			}
			// The standard library's checks of reader semantics, on a
			// window from an absent block into the last, stored, one.
			const from, win = 30<<20 - 32<<10, 64 << 10
			if err := iotest.TestReader(io.NewSectionReader(d, from, win), want[from:from+win]); err != nil {
				t.Error(err)
			}
			if n, err := d.ReadAt(make([]byte, 20), d.Size()-10); n != 10 || err != io.EOF {
				t.Errorf("ReadAt across the end = %d, %v; want 10, EOF", n, err)
			}
			if n, err := d.ReadAt(make([]byte, 10), d.Size()); n != 0 || err != io.EOF {
				t.Errorf("ReadAt(Size) = %d, %v; want 0, EOF", n, err)
			}
		})
	}
}

// TestOpenReadsQemuImages reads VHDs that qemu-img wrote, so the reader is
// not only checked against this package's writer.
func TestOpenReadsQemuImages(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, subformat := range []string{"subformat=dynamic", "subformat=fixed,force_size=on"} {
		out := filepath.Join(dir, "qemu.vhd")
		tooltest.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", subformat, raw, out)
		d := openFile(t, out)
		// qemu rounds up (to a geometry, or to a sector with force_size).
		got := readAll(t, d)
		if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) || !allZero(got[len(want):]) {
			t.Errorf("%s: %d bytes read, differ from the %d-byte raw disk", subformat, len(got), len(want))
		}
	}
}

func TestCorruptionIsRefused(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	fixed, dynamic := filepath.Join(dir, "f.vhd"), filepath.Join(dir, "d.vhd")
	writeImage(t, WriteFixed, raw, testSize, fixed, testOpts)
	writeImage(t, WriteDynamic, raw, testSize, dynamic, testOpts)
	fixedData, _ := os.ReadFile(fixed)
	dynData, _ := os.ReadFile(dynamic)

	flip := func(b []byte, at int) []byte {
		b = bytes.Clone(b)
		b[at] ^= 0x01
		return b
	}
	for _, c := range []struct {
		name    string
		data    []byte
		wantErr string
		// qemu reads a dynamic VHD's footer copy at offset 0, so it
		// does not notice damage to the footer at the end.
		qemuAccepts bool
	}{
		{"fixed footer checksum", flip(fixedData, len(fixedData)-footerSize+64), "footer checksum", false},
		{"fixed footer size", flip(fixedData, len(fixedData)-footerSize+50), "footer checksum", false},
		{"dynamic footer checksum", flip(dynData, len(dynData)-footerSize+67), "footer checksum", true},
		{"dynamic footer copy", flip(dynData, 60), "footer copy checksum", false},
		{"dynamic header block size", flip(dynData, footerSize+33), "dynamic header checksum", false},
		{"footer cookie", flip(fixedData, len(fixedData)-footerSize), "not a VHD", false},
		{"truncated dynamic", append(bytes.Clone(dynData[:len(dynData)-footerSize-4096]), dynData[len(dynData)-footerSize:]...), "past the end", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Open: %v, want an error about %q", err, c.wantErr)
			}
			t.Log(err)
			// qemu refuses the same files.
			path := filepath.Join(dir, "corrupt.vhd")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("qemu-img", "info", "-f", "vpc", path).CombinedOutput(); (err == nil) != c.qemuAccepts {
				t.Errorf("qemu-img info: %v, want it to accept the file: %v\n%s", err, c.qemuAccepts, out)
			}
		})
	}
}

func TestWritesAreReproducible(t *testing.T) {
	dir := t.TempDir()
	raw := testRaw(t, dir)
	for name, write := range map[string]writeFunc{"fixed": WriteFixed, "dynamic": WriteDynamic, "vhdx": WriteVHDX} {
		a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
		writeImage(t, write, raw, testSize, a, testOpts)
		writeImage(t, write, raw, testSize, b, testOpts)
		other := testOpts
		other.UUID[15] ^= 1
		writeImage(t, write, raw, testSize, c, other)
		da, _ := os.ReadFile(a)
		db, _ := os.ReadFile(b)
		dc, _ := os.ReadFile(c)
		if !bytes.Equal(da, db) {
			t.Errorf("%s: two writes differ", name)
		}
		if bytes.Equal(da, dc) {
			t.Errorf("%s: the UUID does not reach the file", name)
		}
	}
}

// TestFooterFields checks the footer byte by byte against the spec's
// offsets, for what qemu does not check or report.
func TestFooterFields(t *testing.T) {
	var buf bytes.Buffer
	src := bytes.NewReader(make([]byte, 4096))
	if err := WriteFixed(&buf, src, 4096, testOpts); err != nil {
		t.Fatal(err)
	}
	f := buf.Bytes()[buf.Len()-footerSize:]
	u32 := func(at int) uint32 { return binary.BigEndian.Uint32(f[at:]) }
	u64 := func(at int) uint64 { return binary.BigEndian.Uint64(f[at:]) }
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"cookie", string(f[0:8]), "conectix"},
		{"features", u32(8), uint32(2)},
		{"version", u32(12), uint32(0x00010000)},
		{"data offset", u64(16), ^uint64(0)},
		{"timestamp", u32(24), uint32(testOpts.Mtime.Sub(vhdEpoch) / time.Second)},
		{"creator", string(f[28:32]), "qem2"},
		{"host OS", string(f[36:40]), "Wi2k"},
		{"original size", u64(40), uint64(1 << 20)},
		{"current size", u64(48), uint64(1 << 20)},
		{"geometry", fmt.Sprint(binary.BigEndian.Uint16(f[56:]), f[58], f[59]), "30 4 17"}, // 2040 of 2048 sectors
		{"disk type", u32(60), uint32(2)},
		{"unique id", [16]byte(f[68:84]), testOpts.UUID},
		{"saved state", f[84], byte(0)},
		{"reserved", allZero(f[85:]), true},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	// Before 2000 there is nothing to encode; SOURCE_DATE_EPOCH=0 must
	// still build.
	if ts, err := timestamp(time.Unix(0, 0)); ts != 0 || err != nil {
		t.Errorf("timestamp(1970) = %d, %v; want 0, nil", ts, err)
	}
	if _, err := timestamp(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Error("timestamp(2200) does not fail")
	}
}

func TestSmallSizes(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{1, 512, 1 << 20, 2<<20 + 1} {
		raw := filepath.Join(dir, "r.raw")
		if err := os.WriteFile(raw, bytes.Repeat([]byte{7}, int(size)), 0o644); err != nil {
			t.Fatal(err)
		}
		p := padded(t, raw, size)
		for _, c := range []struct {
			write  writeFunc
			format string
		}{{WriteFixed, "vpc"}, {WriteDynamic, "vpc"}, {WriteVHDX, "vhdx"}} {
			out := filepath.Join(dir, "r.img")
			writeImage(t, c.write, raw, size, out, testOpts)
			qemuCheck(t, c.format, out)
			if _, vsize := qemuInfo(t, c.format, out); vsize != VirtualSize(size) {
				t.Errorf("%d bytes as %s: virtual size %d, want %d", size, c.format, vsize, VirtualSize(size))
			}
			tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", c.format, p, out)
		}
	}
}

func TestEmptyDisk(t *testing.T) {
	empty := bytes.NewReader(nil)
	if err := WriteFixed(io.Discard, empty, 0, testOpts); err == nil {
		t.Error("WriteFixed accepts an empty disk, which readers would take for a dynamic VHD")
	}
	if err := WriteVHDX(io.Discard, empty, 0, testOpts); err == nil {
		t.Error("WriteVHDX accepts an empty disk")
	}
	var buf bytes.Buffer
	if err := WriteDynamic(&buf, empty, 0, testOpts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "empty.vhd")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, vsize := qemuInfo(t, "vpc", path); vsize != 0 {
		t.Errorf("qemu-img info: virtual size %d, want 0", vsize)
	}
	d, err := Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil || d.Size() != 0 {
		t.Fatalf("Open: %v", err)
	}
}

func TestShortSourceFails(t *testing.T) {
	src := bytes.NewReader(make([]byte, 1000))
	for name, write := range map[string]writeFunc{"fixed": WriteFixed, "dynamic": WriteDynamic, "vhdx": WriteVHDX} {
		if err := write(io.Discard, src, 5000, testOpts); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v, want io.ErrUnexpectedEOF", name, err)
		}
	}
}
