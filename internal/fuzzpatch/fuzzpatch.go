// Package fuzzpatch lets fuzz tests mutate the few KiB that describe a
// disk image rather than the whole image: Go's fuzzing engine slows to a
// halt on inputs of megabytes, and the data around the headers and tables
// only makes the fuzzer's work larger, not deeper.
package fuzzpatch

import "io"

// Region is a byte range of a template, [Off, Off+Len).
type Region struct{ Off, Len int }

// Regions lists the byte ranges given as offset, length pairs.
func Regions(offLen ...int) []Region {
	rs := make([]Region, 0, len(offLen)/2)
	for i := 0; i+1 < len(offLen); i += 2 {
		rs = append(rs, Region{offLen[i], offLen[i+1]})
	}
	return rs
}

// Seed is the fuzz input that Apply turns back into the template: the
// bytes of its regions, in turn.
func Seed(template []byte, rs []Region) []byte {
	var out []byte
	for _, r := range rs {
		if r.Off+r.Len <= len(template) {
			out = append(out, template[r.Off:r.Off+r.Len]...)
		}
	}
	return out
}

// Image is a template with some ranges replaced, read without copying
// the template.
type Image struct {
	base []byte
	size int64
	segs []segment // later ones win
}

type segment struct {
	off int64
	b   []byte
}

// Apply returns template with data written over the regions in turn (as
// far as data goes), cut bytes shorter, so that the fuzzer also tries
// truncated files.
func Apply(template []byte, rs []Region, data []byte, cut uint16) *Image {
	im := &Image{base: template, size: int64(len(template) - min(int(cut), len(template)))}
	for _, r := range rs {
		if len(data) == 0 {
			break
		}
		if r.Off+r.Len > len(template) {
			continue
		}
		n := min(r.Len, len(data))
		im.segs = append(im.segs, segment{int64(r.Off), data[:n:n]})
		data = data[n:]
	}
	return im
}

// Size is the image's length in bytes.
func (im *Image) Size() int64 { return im.size }

// Bytes returns [off, off+n) of the image for the caller to change in
// place (to recompute a checksum, say); nil when the range is not inside
// the image.
func (im *Image) Bytes(off, n int64) []byte {
	if off < 0 || n < 0 || off+n > im.size {
		return nil
	}
	b := make([]byte, n)
	im.ReadAt(b, off)
	im.segs = append(im.segs, segment{off, b})
	return b
}

// ReadAt reads the image with io.ReaderAt semantics.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= im.size {
		return 0, io.EOF
	}
	n := copy(p, im.base[off:im.size])
	for _, s := range im.segs {
		lo, hi := max(off, s.off), min(off+int64(n), s.off+int64(len(s.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], s.b[lo-s.off:hi-s.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
