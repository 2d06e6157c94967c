package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// compressor compresses blocks independently; safe for concurrent use.
type compressor struct {
	id   uint16
	zstd *zstd.Encoder
	zlib sync.Pool
}

func newCompressor(c Compression, blockSize int) (*compressor, error) {
	switch c {
	case Zstd:
		// Linux's squashfs reader allows a zstd window no larger than
		// the block size; the encoder is told so. No checksum: squashfs
		// has none either, as mksquashfs writes it.
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithWindowSize(max(blockSize, metaSize)),
			zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, fmt.Errorf("squashfs: zstd: %w", err)
		}
		return &compressor{id: compZstd, zstd: enc}, nil
	case Gzip:
		return &compressor{id: compZlib}, nil
	}
	return nil, fmt.Errorf("squashfs: unknown compression %v", c)
}

func (c *compressor) compress(b []byte) ([]byte, error) {
	if c.zstd != nil {
		return c.zstd.EncodeAll(b, make([]byte, 0, len(b))), nil
	}
	var buf bytes.Buffer
	buf.Grow(len(b))
	w, _ := c.zlib.Get().(*zlib.Writer)
	if w == nil {
		var err error
		if w, err = zlib.NewWriterLevel(&buf, zlib.BestCompression); err != nil {
			return nil, err
		}
	} else {
		w.Reset(&buf)
	}
	defer c.zlib.Put(w)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// metaBlock is one metadata block as stored: a 16-bit header (length,
// and a flag when stored raw because compressing did not help), then the
// bytes.
func metaBlock(c *compressor, raw []byte) ([]byte, error) {
	out, err := c.compress(raw)
	if err != nil {
		return nil, fmt.Errorf("squashfs: compress metadata: %w", err)
	}
	hdr := uint16(len(out))
	if len(out) >= len(raw) {
		out, hdr = raw, uint16(len(raw))|metaUncompressed
	}
	b := binary.LittleEndian.AppendUint16(make([]byte, 0, 2+len(out)), hdr)
	return append(b, out...), nil
}

// metaWriter builds a table of metadata blocks (the inode or directory
// table) in memory. Positions in it are (offset of a block's start in
// the stored table, offset in the block's uncompressed bytes), which is
// how inodes and listings refer to each other.
type metaWriter struct {
	c   *compressor
	out bytes.Buffer
	cur []byte
}

func newMetaWriter(c *compressor) *metaWriter { return &metaWriter{c: c} }

func (m *metaWriter) pos() (uint64, uint16) { return uint64(m.out.Len()), uint16(len(m.cur)) }

func (m *metaWriter) write(p []byte) error {
	m.cur = append(m.cur, p...)
	for len(m.cur) >= metaSize {
		if err := m.flush(m.cur[:metaSize]); err != nil {
			return err
		}
		m.cur = append(m.cur[:0], m.cur[metaSize:]...)
	}
	return nil
}

func (m *metaWriter) flush(raw []byte) error {
	b, err := metaBlock(m.c, raw)
	if err != nil {
		return err
	}
	m.out.Write(b)
	return nil
}

// finish writes the last, partial block and returns the table.
func (m *metaWriter) finish() ([]byte, error) {
	if len(m.cur) > 0 {
		if err := m.flush(m.cur); err != nil {
			return nil, err
		}
		m.cur = m.cur[:0]
	}
	return m.out.Bytes(), nil
}
