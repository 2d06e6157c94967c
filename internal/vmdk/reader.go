package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
)

// Disk is an open stream-optimized VMDK. It reads grain tables once at
// Open and decompresses grains on demand; ReadAt is safe for concurrent use.
type Disk struct {
	r         io.ReaderAt
	fileSize  int64
	size      int64 // virtual bytes
	grainLen  int64
	gtes      int64
	zeroGrain bool     // a table entry of 1 reads as zeros
	slot      []int32  // grain directory entry -> table in gt, or -1: no grain in its span
	gt        []uint32 // the grain tables present, one after the other

	mu     sync.Mutex // guards the one-grain cache and the decompressor
	cached int64      // grain index held in buf, or -1
	buf    []byte
	cbuf   []byte
	zr     io.ReadCloser
}

// Open reads the header, the footer when the header defers the grain
// directory to it (GD_AT_END, as every streamed file does), the grain
// directory and the grain tables of the VMDK r of fileSize bytes. Only
// compressed sparse extents with markers, that is stream-optimized ones,
// are accepted.
func Open(r io.ReaderAt, fileSize int64) (*Disk, error) {
	if fileSize < sectorSize {
		return nil, fmt.Errorf("vmdk: file of %d bytes is too short for a header: truncated or not a VMDK", fileSize)
	}
	b := make([]byte, sectorSize)
	if err := readAt(r, b, 0, "header"); err != nil {
		return nil, err
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.gdOffset == gdAtEnd {
		if h, err = readFooter(r, fileSize); err != nil {
			return nil, err
		}
	}
	if h.flags&flagCompressed == 0 || h.flags&flagMarkers == 0 || h.compress != deflate {
		return nil, fmt.Errorf("vmdk: not stream-optimized (flags %#x, compression %d): only compressed extents with markers are read", h.flags, h.compress)
	}
	if h.grainSectors == 0 || h.grainSectors > 2048 || bits.OnesCount64(h.grainSectors) != 1 {
		return nil, fmt.Errorf("vmdk: grain of %d sectors: want a power of two up to 2048", h.grainSectors)
	}
	if h.gtes == 0 || h.gtes > gtEntries || bits.OnesCount32(h.gtes) != 1 {
		return nil, fmt.Errorf("vmdk: %d entries per grain table: want a power of two up to %d", h.gtes, gtEntries)
	}
	if h.capacity == 0 || h.capacity > (1<<63-1)/sectorSize {
		return nil, fmt.Errorf("vmdk: capacity of %d sectors is out of range", h.capacity)
	}

	d := &Disk{
		r:         r,
		fileSize:  fileSize,
		size:      int64(h.capacity) * sectorSize,
		grainLen:  int64(h.grainSectors) * sectorSize,
		gtes:      int64(h.gtes),
		zeroGrain: h.flags&flagZeroGrain != 0,
		cached:    -1,
	}
	grains := ceilDiv(int64(h.capacity), int64(h.grainSectors))
	gdEntries := ceilDiv(grains, d.gtes)
	// Checking the directory against the file before allocating it keeps
	// a hostile header from asking for more memory than the file's size.
	if !d.within(h.gdOffset, gdEntries*4) {
		return nil, fmt.Errorf("vmdk: grain directory (%d entries at sector %d) runs past the end of the %d-byte file: truncated?", gdEntries, h.gdOffset, fileSize)
	}
	gd := make([]byte, gdEntries*4)
	if err := readAt(r, gd, int64(h.gdOffset)*sectorSize, "grain directory"); err != nil {
		return nil, err
	}
	// Tables are shared by sector, so that a directory pointing many
	// entries at one table costs no more than the file holds.
	d.slot = make([]int32, gdEntries)
	seen := make(map[uint32]int32)
	raw := make([]byte, d.gtes*4)
	for i := range d.slot {
		sec := binary.LittleEndian.Uint32(gd[i*4:])
		if sec == 0 {
			d.slot[i] = -1
			continue
		}
		if k, ok := seen[sec]; ok {
			d.slot[i] = k
			continue
		}
		if !d.within(uint64(sec), d.gtes*4) {
			return nil, fmt.Errorf("vmdk: grain table %d at sector %d runs past the end of the %d-byte file: truncated?", i, sec, fileSize)
		}
		if err := readAt(r, raw, int64(sec)*sectorSize, "grain table"); err != nil {
			return nil, err
		}
		for j := range d.gtes {
			e := binary.LittleEndian.Uint32(raw[j*4:])
			if e > 1 && !d.within(uint64(e), grainMarkerLen) {
				return nil, fmt.Errorf("vmdk: grain %d at sector %d lies past the end of the %d-byte file: truncated?", int64(i)*d.gtes+j, e, fileSize)
			}
			d.gt = append(d.gt, e)
		}
		seen[sec] = int32(len(seen))
		d.slot[i] = seen[sec]
	}
	return d, nil
}

// within reports whether n bytes at sector sec lie inside the file.
func (d *Disk) within(sec uint64, n int64) bool {
	return sec <= uint64(d.fileSize)/sectorSize && int64(sec)*sectorSize+n <= d.fileSize
}

type parsedHeader struct {
	flags        uint32
	capacity     uint64
	grainSectors uint64
	gtes         uint32
	gdOffset     uint64
	compress     uint16
}

func parseHeader(b []byte) (parsedHeader, error) {
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != magic {
		return parsedHeader{}, errors.New("vmdk: not a VMDK sparse extent (bad magic)")
	}
	if v := le.Uint32(b[4:]); v < 1 || v > 3 {
		return parsedHeader{}, fmt.Errorf("vmdk: unsupported sparse extent version %d", v)
	}
	return parsedHeader{
		flags:        le.Uint32(b[8:]),
		capacity:     le.Uint64(b[12:]),
		grainSectors: le.Uint64(b[20:]),
		gtes:         le.Uint32(b[44:]),
		gdOffset:     le.Uint64(b[56:]),
		compress:     le.Uint16(b[77:]),
	}, nil
}

// readFooter reads the last three sectors, which a complete stream ends
// with: footer marker, footer, end-of-stream marker. A stream cut short
// anywhere loses them, which is what makes truncation detectable.
func readFooter(r io.ReaderAt, fileSize int64) (parsedHeader, error) {
	const tail = 3 * sectorSize
	truncated := fmt.Errorf("vmdk: no footer and end-of-stream marker at the end of the %d-byte file: truncated or not a complete stream", fileSize)
	if fileSize < sectorSize+tail || fileSize%sectorSize != 0 {
		return parsedHeader{}, truncated
	}
	b := make([]byte, tail)
	if err := readAt(r, b, fileSize-tail, "footer"); err != nil {
		return parsedHeader{}, err
	}
	le := binary.LittleEndian
	fm, eos := b[:sectorSize], b[2*sectorSize:]
	if le.Uint32(fm[8:]) != 0 || le.Uint32(fm[12:]) != markerFooter ||
		!bytes.Equal(eos, zeroGrain[:sectorSize]) {
		return parsedHeader{}, truncated
	}
	h, err := parseHeader(b[sectorSize : 2*sectorSize])
	if err != nil {
		return parsedHeader{}, fmt.Errorf("vmdk: footer: %w", err)
	}
	if h.gdOffset == gdAtEnd {
		return parsedHeader{}, errors.New("vmdk: footer does not locate the grain directory")
	}
	return h, nil
}

func readAt(r io.ReaderAt, p []byte, off int64, what string) error {
	got, err := r.ReadAt(p, off)
	if got == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("vmdk: read %s at %d: %w", what, off, err)
}

// Size is the virtual disk size in bytes.
func (d *Disk) Size() int64 { return d.size }

// ReadAt reads virtual disk bytes; unallocated grains read as zeros.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vmdk: negative offset %d", off)
	}
	n := 0
	for n < len(p) && off < d.size {
		g, in := off/d.grainLen, off%d.grainLen
		chunk := min(int64(len(p)-n), d.grainLen-in, d.size-off)
		if err := d.readGrain(g, in, p[n:n+int(chunk)]); err != nil {
			return n, err
		}
		n += int(chunk)
		off += chunk
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *Disk) readGrain(g, in int64, p []byte) error {
	var sec uint32
	if k := d.slot[g/d.gtes]; k >= 0 {
		sec = d.gt[int64(k)*d.gtes+g%d.gtes]
	}
	if sec == 0 || sec == 1 && d.zeroGrain {
		clear(p)
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cached != g {
		d.cached = -1
		if err := d.decode(g, sec); err != nil {
			return err
		}
		d.cached = g
	}
	copy(p, d.buf[in:])
	return nil
}

// decode inflates grain g from its marker at sector sec into d.buf.
func (d *Disk) decode(g int64, sec uint32) error {
	off := int64(sec) * sectorSize
	var m [grainMarkerLen]byte
	if err := readAt(d.r, m[:], off, "grain marker"); err != nil {
		return err
	}
	lba := binary.LittleEndian.Uint64(m[0:])
	n := int64(binary.LittleEndian.Uint32(m[8:]))
	if want := uint64(g * d.grainLen / sectorSize); lba != want {
		return fmt.Errorf("vmdk: grain marker at sector %d is for sector %d, the grain table puts grain %d there (sector %d)", sec, lba, g, want)
	}
	// zlib never grows data by more than a few bytes per 16 KiB block.
	if n == 0 || n > 2*d.grainLen || off+grainMarkerLen+n > d.fileSize {
		return fmt.Errorf("vmdk: grain %d at sector %d: compressed length %d does not fit the file", g, sec, n)
	}
	if d.buf == nil {
		d.buf = make([]byte, d.grainLen)
	}
	if int64(cap(d.cbuf)) < n {
		d.cbuf = make([]byte, n)
	}
	c := d.cbuf[:n]
	if err := readAt(d.r, c, off+grainMarkerLen, "grain"); err != nil {
		return err
	}
	var err error
	if d.zr == nil {
		d.zr, err = zlib.NewReader(bytes.NewReader(c))
	} else {
		err = d.zr.(zlib.Resetter).Reset(bytes.NewReader(c), nil)
	}
	if err != nil {
		return fmt.Errorf("vmdk: grain %d: %w", g, err)
	}
	got, err := io.ReadFull(d.zr, d.buf)
	switch {
	case err == nil:
		// Reading on to the end makes zlib check its Adler-32 trailer.
		var one [1]byte
		if k, err := d.zr.Read(one[:]); k != 0 || err != io.EOF {
			if err == nil || err == io.EOF {
				err = errors.New("more data than a grain")
			}
			return fmt.Errorf("vmdk: grain %d: %w", g, err)
		}
	case (err == io.EOF || err == io.ErrUnexpectedEOF) && int64(got) >= min(d.grainLen, d.size-g*d.grainLen):
		// Some writers (qemu, open-vmdk) stop the last grain at the
		// capacity.
		clear(d.buf[got:])
	default:
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("inflates to %d bytes, short of the grain", got)
		}
		return fmt.Errorf("vmdk: grain %d: %w", g, err)
	}
	return nil
}
