package vhd

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// VHDXDisk reads a dynamic or fixed VHDX without a parent as the raw disk
// it holds. It reads what WriteVHDX writes and what Hyper-V writes after a
// clean shutdown; a file whose log must be replayed first is refused.
type VHDXDisk struct {
	r         io.ReaderAt
	size      int64
	blockSize int64
	chunk     int64 // payload blocks per sector bitmap entry
	bat       []uint64
}

// OpenVHDX checks the file identifier, the current header and region
// table (CRC-32C) and the required metadata, and reads the BAT.
func OpenVHDX(r io.ReaderAt, fileSize int64) (*VHDXDisk, error) {
	sec := make([]byte, xHeaderSection)
	if err := readFull(r, sec[:8], 0, "VHDX file identifier"); err != nil {
		return nil, err
	}
	if string(sec[:8]) != "vhdxfile" {
		return nil, errors.New(`vhdx: no "vhdxfile" identifier`)
	}
	// The two headers alternate; the valid one with the higher sequence
	// number is current.
	var cur []byte
	var seq uint64
	for _, off := range []int64{xHeaderSection, 2 * xHeaderSection} {
		h := make([]byte, xHeaderSize)
		if err := readFull(r, h, off, "VHDX header"); err != nil {
			return nil, err
		}
		if string(h[:4]) != "head" || !crcOK(h, 4) {
			continue
		}
		if s := le.Uint64(h[8:]); cur == nil || s > seq {
			cur, seq = h, s
		}
	}
	if cur == nil {
		return nil, errors.New("vhdx: neither header is intact")
	}
	for _, b := range cur[48:64] {
		if b != 0 {
			return nil, errors.New("vhdx: the log holds entries to replay; open the disk in Hyper-V or qemu-img first")
		}
	}
	rt := make([]byte, xHeaderSection)
	if err := readFull(r, rt, 3*xHeaderSection, "VHDX region table"); err != nil {
		return nil, err
	}
	if string(rt[:4]) != "regi" || !crcOK(rt, 4) {
		return nil, errors.New("vhdx: region table is corrupt")
	}
	var batOff, batLen, metaOff, metaLen int64
	for i := range int64(min(le.Uint32(rt[8:]), 2047)) {
		e := rt[16+32*i:]
		var id [16]byte
		copy(id[:], e)
		switch id {
		case xBATRegion:
			batOff, batLen = int64(le.Uint64(e[16:])), int64(le.Uint32(e[24:]))
		case xMetadataRegion:
			metaOff, metaLen = int64(le.Uint64(e[16:])), int64(le.Uint32(e[24:]))
		}
	}
	if batLen == 0 || metaLen == 0 || batOff+batLen > fileSize || metaOff+metaLen > fileSize {
		return nil, errors.New("vhdx: BAT or metadata region missing or outside the file")
	}
	// The metadata table alone takes 64 KiB; writers make the region
	// 1 MiB.
	if metaLen < xMetaItems || metaLen > xMaxMetaLength {
		return nil, fmt.Errorf("vhdx: metadata region of %d bytes (want %d to %d)", metaLen, xMetaItems, xMaxMetaLength)
	}
	meta := make([]byte, metaLen)
	if err := readFull(r, meta, metaOff, "VHDX metadata"); err != nil {
		return nil, err
	}
	if string(meta[:8]) != "metadata" {
		return nil, errors.New("vhdx: metadata table is corrupt")
	}
	item := func(id [16]byte) []byte {
		for i := range int(min(le.Uint16(meta[10:]), 2047)) {
			e := meta[32+32*i:]
			var got [16]byte
			copy(got[:], e)
			off, n := int64(le.Uint32(e[16:])), int64(le.Uint32(e[20:]))
			if got == id && off+n <= metaLen {
				return meta[off : off+n]
			}
		}
		return nil
	}
	params, vsize, logical := item(xFileParameters), item(xVirtualSize), item(xLogicalSize)
	if len(params) < 8 || len(vsize) < 8 || len(logical) < 4 {
		return nil, errors.New("vhdx: required metadata missing")
	}
	if le.Uint32(params[4:])&2 != 0 {
		return nil, errors.New("vhdx: differencing disks (with a parent) are not supported")
	}
	d := &VHDXDisk{r: r, size: int64(le.Uint64(vsize)), blockSize: int64(le.Uint32(params))}
	// The spec's ranges; they also keep the arithmetic below from
	// overflowing or dividing by zero.
	if d.blockSize < mib || d.blockSize > xMaxBlockSize || d.blockSize&(d.blockSize-1) != 0 || d.size <= 0 || d.size > xMaxSize {
		return nil, fmt.Errorf("vhdx: block size %d or virtual size %d out of range", d.blockSize, d.size)
	}
	if ls := le.Uint32(logical); ls != 512 && ls != 4096 {
		return nil, fmt.Errorf("vhdx: logical sector size %d (want 512 or 4096)", ls)
	}
	d.chunk = (1 << 23) * int64(le.Uint32(logical)) / d.blockSize
	blocks := (d.size + d.blockSize - 1) / d.blockSize
	entries := blocks + (blocks-1)/d.chunk
	if entries*8 > batLen {
		return nil, fmt.Errorf("vhdx: BAT of %d bytes is too small for %d blocks", batLen, blocks)
	}
	raw := make([]byte, entries*8)
	if err := readFull(r, raw, batOff, "VHDX BAT"); err != nil {
		return nil, err
	}
	d.bat = make([]uint64, entries)
	for i := range d.bat {
		d.bat[i] = le.Uint64(raw[8*i:])
		if d.bat[i]&7 == xBlockFullyPresent && int64(d.bat[i]>>20<<20)+d.blockSize > fileSize {
			return nil, fmt.Errorf("vhdx: block %d lies outside the file", i)
		}
	}
	return d, nil
}

// Size is the virtual disk's size in bytes.
func (d *VHDXDisk) Size() int64 { return d.size }

// ReadAt reads the disk; blocks not fully present read as zeros, which a
// disk without a parent guarantees for ZERO, UNMAPPED and NOT_PRESENT.
func (d *VHDXDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vhdx: negative offset %d", off)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), d.size-off))
	for n := 0; n < want; {
		pos := off + int64(n)
		blk, in := pos/d.blockSize, pos%d.blockSize
		chunk := p[n:want]
		chunk = chunk[:min(int64(len(chunk)), d.blockSize-in)]
		e := d.bat[blk+blk/d.chunk]
		switch e & 7 {
		case xBlockFullyPresent:
			if err := readFull(d.r, chunk, int64(e>>20<<20)+in, "VHDX block"); err != nil {
				return n, err
			}
		case 7: // partially present: only differencing disks have these
			return n, fmt.Errorf("vhdx: block %d is partially present, which needs a parent", blk)
		default:
			clear(chunk)
		}
		n += len(chunk)
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// crcOK checks a CRC-32C stored little-endian at b[at:], computed with
// that field zeroed.
func crcOK(b []byte, at int) bool {
	stored := le.Uint32(b[at:])
	le.PutUint32(b[at:], 0)
	got := crc32.Checksum(b, castagnoli)
	le.PutUint32(b[at:], stored)
	return got == stored
}
