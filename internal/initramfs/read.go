package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"

	"github.com/klauspost/compress/zstd"

	"github.com/keelos/keel/internal/fstree"
)

// Detect names the compression of an initramfs from its first bytes (6
// are enough): ok is false when they start neither a codec keel writes
// nor a newc archive.
func Detect(magic []byte) (c Compression, ok bool) {
	switch {
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd, true
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return Gzip, true
	case bytes.HasPrefix(magic, []byte("070701")), bytes.HasPrefix(magic, []byte("070702")):
		return None, true
	}
	return 0, false
}

// Decompress returns the newc cpio stream of the initramfs r holds,
// decompressed as its first bytes say.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	c, ok := Detect(magic)
	if !ok {
		return nil, errors.New("not a zstd, gzip or newc cpio archive")
	}
	switch c {
	case Zstd:
		// One goroutine and little memory: the machine may be busy
		// booting images.
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zstdReadCloser{d}, nil
	case Gzip:
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return z, nil
	}
	return io.NopCloser(br), nil
}

// zstdReadCloser gives zstd.Decoder's Close the io.Closer signature.
type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error {
	z.Decoder.Close()
	return nil
}

// Header is one entry of a newc archive.
type Header struct {
	Name               string // as stored: no leading "/", often none of "./"
	Mode               fs.FileMode
	Ino                uint32
	UID, GID           int
	Nlink              uint32
	Mtime              int64 // seconds since 1970
	Size               int64 // of the data: a regular file's, a symlink's target
	Devmajor, Devminor uint32
}

// Reader reads a newc ("070701" or "070702") cpio archive entry by entry,
// the format Linux unpacks into the initramfs. It streams, so an
// archive of hundreds of MiB never sits in memory.
type Reader struct {
	r    *bufio.Reader
	off  int64 // bytes consumed
	left int64 // data of the current entry not yet read
}

// NewReader reads the archive r holds.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// maxName bounds an entry's name, as PATH_MAX does.
const maxName = 4096

// Next skips what is left of the current entry and reads the next
// header; it returns io.EOF after the TRAILER!!! entry.
func (cr *Reader) Next() (*Header, error) {
	if err := cr.skip(cr.left); err != nil {
		return nil, fmt.Errorf("cpio: %w", err)
	}
	cr.left = 0
	if err := cr.pad(); err != nil {
		return nil, fmt.Errorf("cpio: %w", err)
	}
	var hdr [110]byte
	start := cr.off
	if _, err := io.ReadFull(cr.r, hdr[:]); err != nil {
		if err == io.EOF && start > 0 {
			return nil, errors.New("cpio: no TRAILER!!! record")
		}
		return nil, fmt.Errorf("cpio: read header at %d: %w", start, err)
	}
	cr.off += int64(len(hdr))
	if m := string(hdr[:6]); m != "070701" && m != "070702" {
		return nil, fmt.Errorf("cpio: bad magic %q at offset %d", m, start)
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("cpio: bad header field at offset %d: %w", start, err)
		}
		f[i] = uint32(v)
	}
	namesize := int64(f[11])
	if namesize == 0 || namesize > maxName {
		return nil, fmt.Errorf("cpio: bad name size %d at offset %d", namesize, start)
	}
	name := make([]byte, namesize)
	if _, err := io.ReadFull(cr.r, name); err != nil {
		return nil, fmt.Errorf("cpio: read name: %w", err)
	}
	cr.off += namesize
	if err := cr.pad(); err != nil {
		return nil, fmt.Errorf("cpio: %w", err)
	}
	h := &Header{
		Name: string(bytes.TrimRight(name, "\x00")), Mode: fileMode(f[1]), Ino: f[0],
		UID: int(f[2]), GID: int(f[3]), Nlink: f[4], Mtime: int64(f[5]), Size: int64(f[6]),
		Devmajor: f[9], Devminor: f[10],
	}
	if h.Name == "TRAILER!!!" {
		return nil, io.EOF
	}
	cr.left = h.Size
	return h, nil
}

// Read reads the current entry's data.
func (cr *Reader) Read(p []byte) (int, error) {
	if cr.left <= 0 {
		return 0, io.EOF
	}
	n, err := cr.r.Read(p[:min(int64(len(p)), cr.left)])
	cr.off += int64(n)
	cr.left -= int64(n)
	if err == io.EOF && cr.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (cr *Reader) skip(n int64) error {
	k, err := io.CopyN(io.Discard, cr.r, n)
	cr.off += k
	return err
}

// pad skips to the next 4-byte boundary, where newc starts names and data.
func (cr *Reader) pad() error { return cr.skip((4 - cr.off%4) % 4) }

// fileMode turns a Unix mode word into an fs.FileMode.
func fileMode(u uint32) fs.FileMode {
	m := fstree.PermMode(u)
	for _, t := range unixTypes {
		if u&0o170000 == t.u {
			return m | t.t
		}
	}
	return m | fs.ModeIrregular
}
