// Package initramfs writes a root file tree as a Linux initramfs, a newc
// ("070701") cpio archive, optionally compressed, and reads one back.
//
// The archive is reproducible byte for byte: entries keep the tree's order,
// inode numbers count up from 1 in that order, and every mtime is the same
// fixed value. Regular files with the same content digest, mode and owner
// become one inode with several names (hard links). newc has no room for
// extended attributes, so Entry.Xattrs are dropped.
package initramfs

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/keelos/keel/internal/fstree"
)

// Compression selects the codec wrapped around the cpio archive.
type Compression int

const (
	// Zstd is the default: as small as gzip -9 and much faster to unpack,
	// which is what counts when the guest runs under emulation.
	Zstd Compression = iota
	Gzip
	None
)

func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case Gzip:
		return "gzip"
	case None:
		return "none"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// zstdWindow bounds the decoder's memory. Linux's unzstd accepts windows up
// to 2^27 when it streams; 8 MiB keeps early-boot allocations small.
const zstdWindow = 8 << 20

// Write archives src as a compressed newc cpio on w, with every mtime 0.
func Write(w io.Writer, src fstree.Source, c Compression) error {
	return WriteEpoch(w, src, c, 0)
}

// WriteEpoch is Write with every mtime set to epoch (seconds since 1970).
func WriteEpoch(w io.Writer, src fstree.Source, c Compression, epoch int64) error {
	switch c {
	case None:
		return WriteCPIO(w, src, epoch)
	case Gzip:
		zw, err := kgzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return fmt.Errorf("initramfs: gzip: %w", err)
		}
		return finish(zw, WriteCPIO(zw, src, epoch))
	case Zstd:
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderConcurrency(1)) // one stream, same bytes on every machine
		if err != nil {
			return fmt.Errorf("initramfs: zstd: %w", err)
		}
		return finish(zw, WriteCPIO(zw, src, epoch))
	}
	return fmt.Errorf("initramfs: unknown compression %v", c)
}

func finish(c io.Closer, err error) error {
	if cerr := c.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("initramfs: finish compression: %w", cerr)
	}
	return err
}

// linkKey groups files that may share one inode: hard links share content
// and all metadata.
type linkKey struct {
	digest   string
	mode     fs.FileMode
	uid, gid int
}

// WriteCPIO writes the uncompressed newc archive of src on w.
func WriteCPIO(w io.Writer, src fstree.Source, epoch int64) error {
	entries := src.Entries()

	// First pass: hard-link sets and inode numbers. The kernel (and GNU cpio)
	// take the data from the entry of a set that carries it; by convention
	// that is the last one, the earlier ones have size 0.
	type linkSet struct {
		ino   uint32
		count int
		last  int // index in entries
	}
	sets := map[linkKey]*linkSet{}
	inos := make([]uint32, len(entries))
	next := uint32(1)
	for i, e := range entries {
		if e.Mode.IsRegular() && e.Digest != "" {
			k := linkKey{e.Digest, e.Mode, e.UID, e.GID}
			if s, ok := sets[k]; ok {
				s.count++
				s.last = i
				inos[i] = s.ino
				continue
			}
			sets[k] = &linkSet{ino: next, count: 1, last: i}
		}
		inos[i] = next
		next++
	}

	cw := &writer{w: w}
	for i, e := range entries {
		mode, err := unixMode(e.Mode)
		if err != nil {
			return fmt.Errorf("initramfs: %s: %w", e.Path, err)
		}
		h := header{
			ino: inos[i], mode: mode, uid: uint32(e.UID), gid: uint32(e.GID),
			nlink: 1, mtime: uint32(epoch), name: e.Path,
		}
		switch {
		case e.Mode.IsDir():
			h.nlink = 2
		case e.Mode.IsRegular():
			withData := true
			if e.Digest != "" {
				s := sets[linkKey{e.Digest, e.Mode, e.UID, e.GID}]
				h.nlink = uint32(s.count)
				withData = s.last == i
			}
			if withData && e.Size > 0 {
				h.size = e.Size
			}
		case e.Mode&fs.ModeSymlink != 0:
			h.size = int64(len(e.Linkname))
		case e.Mode&fs.ModeDevice != 0:
			h.rdevMajor, h.rdevMinor = e.Devmajor, e.Devminor
		}
		if h.size > 0xffffffff {
			return fmt.Errorf("initramfs: %s: %d bytes is more than newc can hold", e.Path, h.size)
		}
		if err := cw.header(h); err != nil {
			return err
		}
		if h.size == 0 {
			continue
		}
		if e.Mode&fs.ModeSymlink != 0 {
			if err := cw.body(stringReader(e.Linkname), h.size, e.Path); err != nil {
				return err
			}
			continue
		}
		rc, err := src.Open(e)
		if err != nil {
			return fmt.Errorf("initramfs: open %s: %w", e.Path, err)
		}
		err = cw.body(rc, h.size, e.Path)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return cw.header(header{name: "TRAILER!!!", nlink: 1})
}

// unixTypes pairs the file types of fs.FileMode with the type bits of a
// Unix mode word.
var unixTypes = []struct {
	t fs.FileMode
	u uint32
}{
	{0, 0o100000},
	{fs.ModeDir, 0o040000},
	{fs.ModeSymlink, 0o120000},
	{fs.ModeDevice, 0o060000},
	{fs.ModeDevice | fs.ModeCharDevice, 0o020000},
	{fs.ModeNamedPipe, 0o010000},
	{fs.ModeSocket, 0o140000},
}

func unixMode(m fs.FileMode) (uint32, error) {
	for _, t := range unixTypes {
		if m.Type() == t.t {
			return fstree.UnixPerm(m) | t.u, nil
		}
	}
	return 0, fmt.Errorf("unsupported file type %v", m.Type())
}
