package vhd

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// Disk reads a fixed or dynamic VHD as the raw disk it holds.
//
// It is immutable after Open, so ReadAt may be called concurrently if the
// underlying reader allows it.
type Disk struct {
	r    io.ReaderAt
	size int64 // the footer's current size

	dynamic    bool
	blockSize  int64
	bitmapSize int64
	bat        []uint32 // sector of each block's bitmap, or batAbsent
}

// Open checks r, a VHD file of fileSize bytes, and returns the disk it
// holds, checking before it trusts anything: the footer's cookie and
// checksum, the dynamic header's cookie and checksum, and that every
// table and block lies inside the file. The footer at the end is the one
// read, as the spec has every VHD carry it; a dynamic VHD's copy at offset
// 0 must also be intact, because qemu reads that one instead, so a file
// Open accepts is one qemu opens too.
func Open(r io.ReaderAt, fileSize int64) (*Disk, error) {
	if fileSize < footerSize {
		return nil, fmt.Errorf("vhd: file of %d bytes is too small to hold a %d-byte footer", fileSize, footerSize)
	}
	ftr := make([]byte, footerSize)
	if err := readFull(r, ftr, fileSize-footerSize, "footer"); err != nil {
		return nil, err
	}
	if string(ftr[:8]) != footerCookie {
		return nil, fmt.Errorf("vhd: no %q cookie in the last %d bytes: not a VHD", footerCookie, footerSize)
	}
	if err := verifyChecksum(ftr, 64, "footer"); err != nil {
		return nil, err
	}
	if v := be.Uint32(ftr[12:]); v>>16 != formatVersion>>16 {
		return nil, fmt.Errorf("vhd: unsupported format version %#08x", v)
	}
	cur := be.Uint64(ftr[48:])
	if cur%sectorSize != 0 || cur > math.MaxInt64 {
		return nil, fmt.Errorf("vhd: footer's current size %d is not a whole number of sectors", cur)
	}
	d := &Disk{r: r, size: int64(cur)}

	switch t := be.Uint32(ftr[60:]); t {
	case diskFixed:
		if d.size > fileSize-footerSize {
			return nil, fmt.Errorf("vhd: fixed disk of %d bytes in a %d-byte file: truncated", d.size, fileSize)
		}
		return d, nil
	case diskDynamic:
		head := make([]byte, footerSize)
		if err := readFull(r, head, 0, "footer copy"); err != nil {
			return nil, err
		}
		if string(head[:8]) != footerCookie {
			return nil, fmt.Errorf("vhd: dynamic VHD without a %q cookie at offset 0", footerCookie)
		}
		if err := verifyChecksum(head, 64, "footer copy"); err != nil {
			return nil, err
		}
		if err := d.openDynamic(be.Uint64(ftr[16:]), fileSize); err != nil {
			return nil, err
		}
		return d, nil
	case diskDifferencing:
		return nil, errors.New("vhd: differencing disks need their parent and are not supported")
	default:
		return nil, fmt.Errorf("vhd: unknown disk type %d", t)
	}
}

func (d *Disk) openDynamic(hdrOff uint64, fileSize int64) error {
	// The blocks end at the footer, so nothing may reach past it.
	end := uint64(fileSize - footerSize)
	if hdrOff > end || end-hdrOff < dynHeaderSize {
		return fmt.Errorf("vhd: dynamic header offset %d is outside the file", hdrOff)
	}
	hdr := make([]byte, dynHeaderSize)
	if err := readFull(d.r, hdr, int64(hdrOff), "dynamic header"); err != nil {
		return err
	}
	if string(hdr[:8]) != dynHeaderCookie {
		return fmt.Errorf("vhd: no %q cookie at dynamic header offset %d", dynHeaderCookie, hdrOff)
	}
	if err := verifyChecksum(hdr, 36, "dynamic header"); err != nil {
		return err
	}
	bs := be.Uint32(hdr[32:])
	if bs < sectorSize || bits.OnesCount32(bs) != 1 {
		return fmt.Errorf("vhd: block size %d is not a power of two of at least %d", bs, sectorSize)
	}
	d.dynamic = true
	d.blockSize = int64(bs)
	// One bit per sector, padded to whole sectors.
	d.bitmapSize = ceilDiv(ceilDiv(d.blockSize/sectorSize, 8), sectorSize) * sectorSize

	entries := uint64(be.Uint32(hdr[28:]))
	if entries*uint64(bs) < uint64(d.size) {
		return fmt.Errorf("vhd: %d blocks of %d bytes cannot hold a %d-byte disk", entries, bs, d.size)
	}
	batOff := be.Uint64(hdr[16:])
	// Bounding the table by the file keeps a corrupt count from
	// allocating gigabytes.
	if batOff > end || (end-batOff)/4 < entries {
		return fmt.Errorf("vhd: BAT of %d entries at offset %d runs past the end of the file", entries, batOff)
	}
	raw := make([]byte, entries*4)
	if err := readFull(d.r, raw, int64(batOff), "BAT"); err != nil {
		return err
	}
	d.bat = make([]uint32, entries)
	for i := range d.bat {
		e := be.Uint32(raw[i*4:])
		d.bat[i] = e
		if e == batAbsent {
			continue
		}
		if off := uint64(e) * sectorSize; off > end || end-off < uint64(d.bitmapSize+d.blockSize) {
			return fmt.Errorf("vhd: block %d at offset %d runs past the end of the file", i, off)
		}
	}
	return nil
}

// Size is the disk's size in bytes, as the footer's current size states it.
func (d *Disk) Size() int64 { return d.size }

// Dynamic reports whether the VHD is dynamic (sparse) rather than fixed.
func (d *Disk) Dynamic() bool { return d.dynamic }

// ReadAt reads the disk with io.ReaderAt semantics. Blocks a dynamic VHD
// does not store read as zeros. The sector bitmaps of stored blocks are
// not consulted, as qemu does not: in a disk without a parent every sector
// of an allocated block holds its data, zeros included, from the moment
// the block is allocated.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vhd: negative offset %d", off)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), d.size-off))
	for n := 0; n < want; {
		pos := off + int64(n)
		chunk := p[n:want]
		fileOff := pos
		if d.dynamic {
			blk, in := pos/d.blockSize, pos%d.blockSize
			chunk = chunk[:min(int64(len(chunk)), d.blockSize-in)]
			e := d.bat[blk]
			if e == batAbsent {
				clear(chunk)
				n += len(chunk)
				continue
			}
			fileOff = int64(e)*sectorSize + d.bitmapSize + in
		}
		if err := readFull(d.r, chunk, fileOff, "data"); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// readFull is ReadAt that treats a short read as an error, naming what
// was being read.
func readFull(r io.ReaderAt, p []byte, off int64, what string) error {
	got, err := r.ReadAt(p, off)
	if got == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("vhd: read %s at %d: %w", what, off, err)
}

// verifyChecksum checks the spec checksum stored big-endian at b[at:],
// computed with that field zeroed. b is restored afterwards.
func verifyChecksum(b []byte, at int, what string) error {
	stored := be.Uint32(b[at:])
	be.PutUint32(b[at:], 0)
	got := checksum(b)
	be.PutUint32(b[at:], stored)
	if got != stored {
		return fmt.Errorf("vhd: %s checksum is %#08x but the contents sum to %#08x: the %s is corrupt", what, stored, got, what)
	}
	return nil
}
