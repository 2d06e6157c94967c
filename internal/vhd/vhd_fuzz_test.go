package vhd

import (
	"bytes"
	"hash/crc32"
	"io"
	"testing"

	"github.com/keelos/keel/internal/fuzzpatch"
)

// fuzzDisk is a raw disk of n bytes with data at both ends and across the
// first block boundary of each format, as seed material.
func fuzzDisk(n int) []byte {
	b := make([]byte, n)
	for _, off := range []int{0, mib - 100, 2*mib - 100, n - 300} {
		if off >= 0 && off+300 <= n {
			copy(b[off:], bytes.Repeat([]byte{byte(off)}, 300))
		}
	}
	return b
}

// write returns what w writes for disk.
func write(t testing.TB, w writeFunc, disk []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := w(&out, bytes.NewReader(disk), int64(len(disk)), testOpts); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// fixVHD recomputes the checksums of the footer, its copy and the dynamic
// header of a VHD, so that mutations reach the fields behind them.
func fixVHD(im *fuzzpatch.Image) {
	fix := func(s []byte, at int) {
		if s != nil {
			be.PutUint32(s[at:], 0)
			be.PutUint32(s[at:], checksum(s))
		}
	}
	ftr := im.Bytes(im.Size()-footerSize, footerSize)
	if ftr == nil {
		return
	}
	fix(ftr, 64)
	fix(im.Bytes(0, footerSize), 64)
	if off := be.Uint64(ftr[16:]); off < uint64(im.Size()) {
		fix(im.Bytes(int64(off), dynHeaderSize), 36)
	}
}

// fixVHDX recomputes the CRC-32C of both headers and region tables.
func fixVHDX(im *fuzzpatch.Image) {
	for _, s := range [][2]int64{{xHeaderSection, xHeaderSize}, {2 * xHeaderSection, xHeaderSize}, {3 * xHeaderSection, xHeaderSection}, {4 * xHeaderSection, xHeaderSection}} {
		if b := im.Bytes(s[0], s[1]); b != nil {
			le.PutUint32(b[4:], 0)
			le.PutUint32(b[4:], crc32.Checksum(b, castagnoli))
		}
	}
}

// checkReads reads windows of a disk of size bytes (its start, across
// its end, and past it) and fails on a read that breaks io.ReaderAt's
// contract: more bytes than asked, or fewer without an error.
func checkReads(t *testing.T, r io.ReaderAt, size int64) {
	t.Helper()
	buf := make([]byte, 64<<10+333)
	for _, off := range []int64{0, size / 2, size - 100, size, size + 1} {
		if off < 0 {
			continue
		}
		n, err := r.ReadAt(buf, off)
		if n < 0 || n > len(buf) || (n < len(buf) && err == nil) {
			t.Fatalf("ReadAt(%d bytes at %d) of a %d-byte disk = %d, %v", len(buf), off, size, n, err)
		}
	}
}

// template is a writer's output and the regions of it that describe the
// disk, which the fuzzer mutates.
type template struct {
	image   []byte
	regions []fuzzpatch.Region
}

func vhdTemplates(t testing.TB) []template {
	disk := fuzzDisk(3*mib + 1000)
	fixed := write(t, WriteFixed, disk)
	dynamic := write(t, WriteDynamic, disk)
	return []template{
		{fixed, fuzzpatch.Regions(len(fixed)-footerSize, footerSize)},
		{dynamic, fuzzpatch.Regions(0, footerSize, footerSize, dynHeaderSize, footerSize+dynHeaderSize, 64, len(dynamic)-footerSize, footerSize)},
	}
}

// FuzzOpen checks that no VHD makes Open or ReadAt panic or misreport a
// read. The fuzzer mutates the footers, the dynamic header and the BAT of
// a fixed or a dynamic VHD (data picks which); with fix set, their
// checksums are recomputed so that mutations reach the fields behind
// them.
func FuzzOpen(f *testing.F) {
	ts := vhdTemplates(f)
	for i, tp := range ts {
		f.Add(uint8(i), fuzzpatch.Seed(tp.image, tp.regions), uint16(0), false)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte, cut uint16, fix bool) {
		tp := ts[int(which)%len(ts)]
		img := fuzzpatch.Apply(tp.image, tp.regions, data, cut)
		if fix {
			fixVHD(img)
		}
		d, err := Open(img, img.Size())
		if err != nil {
			return
		}
		checkReads(t, d, d.Size())
	})
}

// FuzzOpenVHDX is FuzzOpen for VHDX: the fuzzer mutates the headers, the
// region table, the metadata and the BAT. Headers and region table are
// re-checksummed; the metadata and BAT have no checksum of their own.
func FuzzOpenVHDX(f *testing.F) {
	img := write(f, WriteVHDX, fuzzDisk(3*mib+1000))
	rs := fuzzpatch.Regions(xHeaderSection, 128, 2*xHeaderSection, 128, 3*xHeaderSection, 160,
		xMetaOffset, 32+5*32, xMetaOffset+xMetaItems, 48, xBATOffset, 64)
	f.Add(fuzzpatch.Seed(img, rs), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		img := fuzzpatch.Apply(img, rs, data, cut)
		fixVHDX(img)
		d, err := OpenVHDX(img, img.Size())
		if err != nil {
			return
		}
		checkReads(t, d, d.Size())
	})
}

// FuzzRoundTrip checks that every writer's output reads back as the disk
// it was given, padded with zeros to the virtual size.
func FuzzRoundTrip(f *testing.F) {
	f.Add(fuzzDisk(1000), uint8(0))
	f.Add([]byte{1}, uint8(1))
	f.Add(fuzzDisk(4096), uint8(2))
	f.Fuzz(func(t *testing.T, disk []byte, format uint8) {
		formats := []struct {
			write writeFunc
			open  func([]byte) (io.ReaderAt, int64, error)
		}{
			{WriteFixed, func(b []byte) (io.ReaderAt, int64, error) {
				d, err := Open(bytes.NewReader(b), int64(len(b)))
				return d, size(d), err
			}},
			{WriteDynamic, func(b []byte) (io.ReaderAt, int64, error) {
				d, err := Open(bytes.NewReader(b), int64(len(b)))
				return d, size(d), err
			}},
			{WriteVHDX, func(b []byte) (io.ReaderAt, int64, error) {
				d, err := OpenVHDX(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					return nil, 0, err
				}
				return d, d.Size(), nil
			}},
		}
		if len(disk) == 0 {
			return
		}
		fm := formats[int(format)%len(formats)]
		d, n, err := fm.open(write(t, fm.write, disk))
		if err != nil {
			t.Fatalf("format %d: %v", format%3, err)
		}
		if n != VirtualSize(int64(len(disk))) {
			t.Fatalf("format %d: size %d, want %d", format%3, n, VirtualSize(int64(len(disk))))
		}
		got := make([]byte, n)
		if _, err := d.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		want := append(bytes.Clone(disk), make([]byte, n-int64(len(disk)))...)
		if !bytes.Equal(got, want) {
			t.Fatalf("format %d: the disk read back differs", format%3)
		}
	})
}

func size(d *Disk) int64 {
	if d == nil {
		return 0
	}
	return d.Size()
}
