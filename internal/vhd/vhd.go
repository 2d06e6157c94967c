// Package vhd writes a raw disk image as a Microsoft Virtual Hard Disk:
// fixed VHD (the format Azure accepts), dynamic VHD and dynamic VHDX
// (Hyper-V), and reads fixed and dynamic VHDs back.
//
// Every writer is a pure function of the source bytes and Options: the disk
// id and the footer timestamp are inputs, never the clock or a random
// source, so the same raw disk always yields the same file. Writers stream:
// the sparse formats make a first pass over the source to find the blocks
// that hold non-zero bytes, lay out all metadata from that, and write the
// file in one sequential sweep, so w need not seek and memory stays at a
// block plus the allocation table. The source must not change between the
// two passes.
package vhd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Options are the inputs that would otherwise come from the clock or a
// random source.
type Options struct {
	UUID  [16]byte  // the disk's unique id; the caller derives it from the content
	Mtime time.Time // the footer's timestamp (seconds since 2000-01-01 UTC); the caller passes SOURCE_DATE_EPOCH
}

const (
	sectorSize = 512
	mib        = 1 << 20

	footerSize    = 512
	dynHeaderSize = 1024
	// blockSize is the spec's default, the size Hyper-V and qemu-img
	// write, and so the one every VHD reader is sure to handle.
	blockSize  = 2 << 20
	bitmapSize = 512 // one bit per sector of a block, padded to a sector
	batAbsent  = 0xFFFFFFFF

	diskFixed        = 2
	diskDynamic      = 3
	diskDifferencing = 4

	footerCookie     = "conectix"
	dynHeaderCookie  = "cxsparse"
	featuresReserved = 2 // "must always be set"
	formatVersion    = 0x00010000
	noDataOffset     = math.MaxUint64 // footer data offset of a fixed disk

	// qemu (block/vpc.c) computes the disk size from the CHS geometry
	// unless the creator application is one it trusts to have stored the
	// exact size: "win " (Hyper-V), "qem2", "d2v ", "CTXS", "tap\0". CHS
	// cannot express most sizes (a 32 MiB disk comes out at 33,527,808
	// bytes), so a geometry-trusting reader would see a truncated disk and
	// qemu-img compare would fail. "qem2" is the tag qemu-img itself writes
	// for `convert -O vpc -o subformat=fixed,force_size`, the conversion
	// Azure's documentation prescribes, so it is a footer Azure already
	// ingests and whose one meaning is "current size is authoritative";
	// "win " would instead claim the file came from Hyper-V. The version
	// and host OS are the ones qemu-img writes with it, so readers never
	// see a combination no real tool produced. Hyper-V and Azure size the
	// disk from the current size whatever the creator.
	creatorApp     = "qem2"
	creatorVersion = 0x00050003
	creatorHostOS  = "Wi2k"
)

// vhdEpoch is the zero of the footer's timestamp.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var be = binary.BigEndian

// VirtualSize is the size a guest sees for a raw disk of size bytes: Azure
// rejects a VHD whose virtual size is not a whole number of MiB, so every
// writer pads the raw disk with zeros up to the next MiB. One rule for all
// formats keeps a dynamic VHD or a VHDX convertible to an Azure-ready fixed
// VHD without resizing.
func VirtualSize(size int64) int64 { return ceilDiv(size, mib) * mib }

// WriteFixed writes a fixed VHD as Azure requires it: the raw data,
// zero-padded to a whole MiB, then the 512-byte footer. size is the raw
// disk's size in bytes.
func WriteFixed(w io.Writer, src io.ReaderAt, size int64, opts Options) error {
	if size <= 0 {
		// An empty fixed VHD is a lone footer, and readers that look for
		// a dynamic VHD's footer copy at offset 0 (qemu does) would find
		// it there and misread the file.
		return fmt.Errorf("vhd: size %d: a fixed VHD must hold at least one byte", size)
	}
	vsize := VirtualSize(size)
	// Build the footer first so a bad Mtime fails before GiBs are written.
	ftr, err := footer(vsize, diskFixed, noDataOffset, opts)
	if err != nil {
		return err
	}
	buf := make([]byte, blockSize)
	for off := int64(0); off < vsize; off += blockSize {
		b := buf[:min(blockSize, vsize-off)]
		if err := readBlock(src, size, off, b); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("vhd: write data at %d: %w", off, err)
		}
	}
	if _, err := w.Write(ftr[:]); err != nil {
		return fmt.Errorf("vhd: write footer: %w", err)
	}
	return nil
}

// WriteDynamic writes a dynamic (sparse) VHD: footer copy, dynamic header,
// BAT, only the 2 MiB blocks that hold non-zero data, footer. Zero blocks
// are left out.
func WriteDynamic(w io.Writer, src io.ReaderAt, size int64, opts Options) error {
	if size < 0 {
		return fmt.Errorf("vhd: negative size %d", size)
	}
	vsize := VirtualSize(size)
	ftr, err := footer(vsize, diskDynamic, footerSize, opts)
	if err != nil {
		return err
	}
	nblocks := ceilDiv(vsize, blockSize)
	if nblocks > math.MaxUint32 {
		return fmt.Errorf("vhd: %d bytes need %d blocks, more than a dynamic VHD can index", size, nblocks)
	}
	data, err := nonZeroBlocks(src, size, blockSize)
	if err != nil {
		return err
	}

	// Layout, as qemu-img writes it: footer copy, header, BAT
	// padded to a sector, then each stored block as its sector bitmap
	// followed by its data, then the footer.
	const batOff = footerSize + dynHeaderSize
	batBytes := ceilDiv(nblocks*4, sectorSize) * sectorSize
	dataOff := batOff + batBytes
	const stride = bitmapSize + blockSize
	// BAT entries are 32-bit sector numbers and 0xFFFFFFFF means absent,
	// which caps the file near 2 TiB.
	if n := int64(len(data)); n > 0 && (dataOff+(n-1)*stride)/sectorSize >= batAbsent {
		return fmt.Errorf("vhd: %d non-zero blocks do not fit the 32-bit sector offsets of a dynamic VHD", n)
	}

	hdr := make([]byte, dynHeaderSize)
	copy(hdr, dynHeaderCookie)
	be.PutUint64(hdr[8:], noDataOffset) // no further header structures
	be.PutUint64(hdr[16:], batOff)
	be.PutUint32(hdr[24:], formatVersion)
	be.PutUint32(hdr[28:], uint32(nblocks))
	be.PutUint32(hdr[32:], blockSize)
	be.PutUint32(hdr[36:], checksum(hdr))

	bat := bytes.Repeat([]byte{0xFF}, int(batBytes))
	for i, b := range data {
		be.PutUint32(bat[b*4:], uint32((dataOff+int64(i)*stride)/sectorSize))
	}

	for _, part := range []struct {
		what string
		b    []byte
	}{{"footer copy", ftr[:]}, {"dynamic header", hdr}, {"BAT", bat}} {
		if _, err := w.Write(part.b); err != nil {
			return fmt.Errorf("vhd: write %s: %w", part.what, err)
		}
	}

	// Every sector of a stored block is marked present: the block holds
	// the source's bytes, zeros included, exactly as qemu marks the blocks
	// it allocates.
	buf := make([]byte, stride)
	for i := range bitmapSize {
		buf[i] = 0xFF
	}
	for _, b := range data {
		if err := readBlock(src, size, b*blockSize, buf[bitmapSize:]); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("vhd: write block %d: %w", b, err)
		}
	}
	if _, err := w.Write(ftr[:]); err != nil {
		return fmt.Errorf("vhd: write footer: %w", err)
	}
	return nil
}

// footer is the 512-byte hard disk footer for a disk of vsize bytes.
func footer(vsize int64, diskType uint32, dataOffset uint64, opts Options) ([footerSize]byte, error) {
	var f [footerSize]byte
	ts, err := timestamp(opts.Mtime)
	if err != nil {
		return f, err
	}
	copy(f[0:], footerCookie)
	be.PutUint32(f[8:], featuresReserved)
	be.PutUint32(f[12:], formatVersion)
	be.PutUint64(f[16:], dataOffset)
	be.PutUint32(f[24:], ts)
	copy(f[28:], creatorApp)
	be.PutUint32(f[32:], creatorVersion)
	copy(f[36:], creatorHostOS)
	be.PutUint64(f[40:], uint64(vsize)) // original size
	be.PutUint64(f[48:], uint64(vsize)) // current size
	c, h, s := geometry(vsize / sectorSize)
	be.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	be.PutUint32(f[60:], diskType)
	copy(f[68:], opts.UUID[:])
	// f[84], the saved state, stays 0: the disk was never part of a
	// saved VM.
	be.PutUint32(f[64:], checksum(f[:]))
	return f, nil
}

// timestamp encodes t as seconds since 2000-01-01 UTC. Times before then
// encode as 0 rather than failing: SOURCE_DATE_EPOCH=0 is a common
// convention for "no meaningful date", and the field is informational.
func timestamp(t time.Time) (uint32, error) {
	s := t.Unix() - vhdEpoch.Unix()
	switch {
	case s < 0:
		return 0, nil
	case s > math.MaxUint32:
		return 0, fmt.Errorf("vhd: time %s is past the footer's range (2136-02-07)", t.UTC().Format(time.RFC3339))
	}
	return uint32(s), nil
}

// geometry is the CHS geometry the VHD specification (appendix,
// "CHS Calculation") derives from a sector count. Readers that predate
// the current-size field, such as Virtual PC and BIOS emulations, size
// the disk from it.
func geometry(totalSectors int64) (cylinders uint16, heads, sectorsPerTrack uint8) {
	ts := min(totalSectors, 65535*16*255)
	var spt, h, cth int64
	if ts >= 65535*16*63 {
		spt, h = 255, 16
		cth = ts / spt
	} else {
		spt = 17
		cth = ts / spt
		h = max((cth+1023)/1024, 4)
		if cth >= h*1024 || h > 16 {
			spt, h = 31, 16
			cth = ts / spt
		}
		if cth >= h*1024 {
			spt, h = 63, 16
			cth = ts / spt
		}
	}
	return uint16(cth / h), uint8(h), uint8(spt)
}

// checksum is the spec's footer and header checksum: the one's complement
// of the byte sum. b's checksum field must be zero.
func checksum(b []byte) uint32 {
	var sum uint32
	for _, c := range b {
		sum += uint32(c)
	}
	return ^sum
}

// readBlock fills buf with the source bytes at off, zeros past size.
func readBlock(src io.ReaderAt, size, off int64, buf []byte) error {
	n := max(0, min(int64(len(buf)), size-off))
	clear(buf[n:])
	if n == 0 {
		return nil
	}
	got, err := src.ReadAt(buf[:n], off)
	if int64(got) == n {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("vhd: read source at %d: %w", off+int64(got), err)
}

// nonZeroBlocks lists, ascending, the indexes of the bs-byte blocks of the
// source that hold a non-zero byte. Blocks wholly past size are padding,
// zero by definition, and are not read.
func nonZeroBlocks(src io.ReaderAt, size, bs int64) ([]int64, error) {
	var out []int64
	buf := make([]byte, bs)
	for b := int64(0); b*bs < size; b++ {
		if err := readBlock(src, size, b*bs, buf); err != nil {
			return nil, err
		}
		if !allZero(buf) {
			out = append(out, b)
		}
	}
	return out, nil
}

var zeroBlock = make([]byte, blockSize)

// allZero compares in blockSize steps against a shared zero buffer, which
// bytes.Equal turns into vectorised compares.
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
