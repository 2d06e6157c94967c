package initramfs

import (
	"fmt"
	"io"
	"strings"
)

// header is one newc record header; device numbers of the archive's own
// filesystem are always 0.
type header struct {
	ino, mode, uid, gid, nlink, mtime uint32
	size                              int64
	rdevMajor, rdevMinor              uint32
	name                              string
}

// writer tracks the offset so names and bodies can be padded to 4 bytes.
type writer struct {
	w   io.Writer
	off int64
	buf []byte
}

var zeros [4]byte

func (cw *writer) write(b []byte) error {
	n, err := cw.w.Write(b)
	cw.off += int64(n)
	if err != nil {
		return fmt.Errorf("initramfs: write: %w", err)
	}
	return nil
}

func (cw *writer) pad() error {
	if r := cw.off % 4; r != 0 {
		return cw.write(zeros[:4-r])
	}
	return nil
}

func (cw *writer) header(h header) error {
	cw.buf = fmt.Appendf(cw.buf[:0], "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, uint32(h.size),
		0, 0, h.rdevMajor, h.rdevMinor, len(h.name)+1, 0)
	cw.buf = append(cw.buf, h.name...)
	cw.buf = append(cw.buf, 0)
	if err := cw.write(cw.buf); err != nil {
		return err
	}
	return cw.pad()
}

func (cw *writer) body(r io.Reader, size int64, name string) error {
	n, err := io.Copy(cw.w, io.LimitReader(r, size))
	cw.off += n
	if err != nil {
		return fmt.Errorf("initramfs: copy %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("initramfs: %s: got %d bytes, entry says %d", name, n, size)
	}
	return cw.pad()
}

func stringReader(s string) io.Reader { return strings.NewReader(s) }
