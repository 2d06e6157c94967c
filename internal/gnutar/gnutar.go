// Package gnutar writes a tar archive holding one file as an old-GNU
// sparse entry: only the file's data is stored, its runs of zeros become
// holes that GNU tar (and Go's archive/tar) recreate on extraction.
//
// Compute Engine imports a disk as disk.raw in a gzipped tar and asks for
// exactly this (`tar --format=oldgnu -S`). archive/tar reads sparse files
// but cannot write them. A whole-GiB cloud disk that holds a few tens of
// MiB then costs a few tens of MiB to compress instead of a GiB.
package gnutar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

const (
	blockSize = 512
	// chunk is the granularity of hole detection: a zero run shorter than
	// this stays data, which keeps the sparse map short.
	chunk = 64 << 10
	// Entries in the header, and in each extension block.
	headerEntries    = 4
	extensionEntries = 21
)

// region is a run of data in the file.
type region struct{ off, n int64 }

// WriteSparse writes a complete archive to w: one regular file called
// name, of size bytes read from src, with mode 0644, owner 0:0, no user
// names and modification time mtime. The same input gives the same bytes.
func WriteSparse(w io.Writer, name string, src io.ReaderAt, size int64, mtime time.Time) error {
	if len(name) == 0 || len(name) > 99 {
		return fmt.Errorf("gnutar: name %q: want 1 to 99 bytes", name)
	}
	if size < 0 {
		return fmt.Errorf("gnutar: negative size %d", size)
	}
	regions, err := dataRegions(src, size)
	if err != nil {
		return err
	}
	// A file that ends in a hole gets a final empty region at its end,
	// as GNU tar writes, so the extracted file has its full length.
	entries := regions
	if len(regions) == 0 || regions[len(regions)-1].off+regions[len(regions)-1].n < size {
		entries = append(entries[:len(entries):len(entries)], region{off: size})
	}
	var stored int64
	for _, r := range regions {
		stored += r.n
	}

	hdr := make([]byte, blockSize)
	copy(hdr, name)
	putNumber(hdr[100:108], 0o644)
	putNumber(hdr[108:116], 0)
	putNumber(hdr[116:124], 0)
	putNumber(hdr[124:136], stored)
	putNumber(hdr[136:148], max(mtime.Unix(), 0))
	hdr[156] = 'S'
	copy(hdr[257:], "ustar  \x00") // old GNU magic and version
	putNumber(hdr[483:495], size)
	for i, e := range entries[:min(len(entries), headerEntries)] {
		putEntry(hdr[386+24*i:], e)
	}
	rest := entries[min(len(entries), headerEntries):]
	if len(rest) > 0 {
		hdr[482] = 1
	}
	putChecksum(hdr)
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("gnutar: %w", err)
	}
	written := int64(blockSize) + stored
	for len(rest) > 0 {
		ext := make([]byte, blockSize)
		n := min(len(rest), extensionEntries)
		for i, e := range rest[:n] {
			putEntry(ext[24*i:], e)
		}
		rest = rest[n:]
		if len(rest) > 0 {
			ext[504] = 1
		}
		if _, err := w.Write(ext); err != nil {
			return fmt.Errorf("gnutar: %w", err)
		}
		written += blockSize
	}
	for _, r := range regions {
		n, err := io.Copy(w, io.NewSectionReader(src, r.off, r.n))
		if err == nil && n != r.n {
			err = io.ErrUnexpectedEOF // the file shrank since it was scanned
		}
		if err != nil {
			return fmt.Errorf("gnutar: %s: %w", name, err)
		}
	}
	// Pad the data to a block, then the two zero blocks that end an
	// archive, and fill the last 10 KiB record as GNU tar does.
	const record = 20 * blockSize
	pad := (blockSize-written%blockSize)%blockSize + 2*blockSize
	pad += (record - (written+pad)%record) % record
	if _, err := w.Write(make([]byte, pad)); err != nil {
		return fmt.Errorf("gnutar: %w", err)
	}
	return nil
}

// dataRegions lists the runs of whole chunks (on a grid from offset 0)
// that hold a non-zero byte. Only the file's allocated extents are read
// when the file system can say where they are: a hole reads as zeros, so
// the result is the same as reading everything, without reading GiBs of
// holes.
func dataRegions(src io.ReaderAt, size int64) ([]region, error) {
	var regions []region
	buf := make([]byte, chunk)
	for _, ext := range extents(src, size) {
		for off := ext.off; off < ext.off+ext.n; off += chunk {
			b := buf[:min(chunk, size-off)]
			if _, err := src.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && off+int64(len(b)) == size) {
				return nil, fmt.Errorf("gnutar: read at %d: %w", off, err)
			}
			if allZero(b) {
				continue
			}
			if n := len(regions); n > 0 && regions[n-1].off+regions[n-1].n == off {
				regions[n-1].n += int64(len(b))
			} else {
				regions = append(regions, region{off, int64(len(b))})
			}
		}
	}
	return regions, nil
}

// extents are the chunk-aligned ranges of src that may hold data: its
// allocated extents (SEEK_DATA/SEEK_HOLE) when src is a file, else all of
// it. Seeking moves the file's offset, which ReadAt does not use.
func extents(src io.ReaderAt, size int64) []region {
	all := []region{{0, size}}
	f, ok := src.(*os.File)
	if !ok {
		return all
	}
	fd := int(f.Fd())
	var out []region
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole from off to the end
		}
		if err != nil {
			return all
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return all
		}
		start, end := data/chunk*chunk, min((hole+chunk-1)/chunk*chunk, size)
		if n := len(out); n > 0 && out[n-1].off+out[n-1].n >= start {
			out[n-1].n = max(out[n-1].n, end-out[n-1].off)
		} else if start < end {
			out = append(out, region{start, end - start})
		}
		off = hole
	}
	return out
}

var zeros = make([]byte, chunk)

func allZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }

func putEntry(b []byte, r region) {
	putNumber(b[0:12], r.off)
	putNumber(b[12:24], r.n)
}

// putNumber writes v as GNU tar does: octal digits and a NUL when they
// fit, else base-256 (a leading 0x80 byte, then big-endian), which GNU
// tar and archive/tar read for sizes past 8 GiB.
func putNumber(b []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	if len(s) < len(b) {
		copy(b, bytes.Repeat([]byte{'0'}, len(b)-1-len(s)))
		copy(b[len(b)-1-len(s):], s)
		b[len(b)-1] = 0
		return
	}
	for i := len(b) - 1; i > 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	b[0] = 0x80
}

// putChecksum stores the header checksum: the sum of its bytes with the
// checksum field counted as spaces, in six octal digits, NUL, space.
func putChecksum(hdr []byte) {
	copy(hdr[148:156], "        ")
	var sum int64
	for _, c := range hdr {
		sum += int64(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
}
