package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Disk reads the guest disk of a qcow2 image as an io.ReaderAt.
//
// It supports what Write and a plain
// `qemu-img convert -O qcow2` produce: version 2 or 3, no encryption, no
// backing file, no compressed clusters, no external data file. That is
// enough to look inside any image keel built; anything else fails with a
// clear error rather than reading wrong bytes.
type Disk struct {
	r           io.ReaderAt
	size        int64 // guest disk size
	clusterBits uint
	l1          []uint64
	l2          map[uint64][]uint64 // L2 tables by host offset
}

const (
	offsetMask     = 0x00fffffffffffe00
	compressedFlag = uint64(1) << 62
	zeroFlag       = uint64(1) // L2 entry bit 0 (v3): cluster reads as zeros
	maxL1Bytes     = 32 << 20  // a 32 MiB L1 maps 256 TiB at 64 KiB clusters
)

// Open parses the qcow2 header at the start of r.
func Open(r io.ReaderAt) (*Disk, error) {
	var h [104]byte
	if _, err := r.ReadAt(h[:72], 0); err != nil {
		return nil, fmt.Errorf("qcow2: read header: %w", err)
	}
	be := binary.BigEndian
	if be.Uint32(h[0:]) != magic {
		return nil, errors.New("qcow2: bad magic")
	}
	version := be.Uint32(h[4:])
	if version != 2 && version != 3 {
		return nil, fmt.Errorf("qcow2: unsupported version %d", version)
	}
	if be.Uint64(h[8:]) != 0 {
		return nil, errors.New("qcow2: images with a backing file are not supported")
	}
	q := &Disk{r: r, clusterBits: uint(be.Uint32(h[20:])), size: int64(be.Uint64(h[24:])), l2: map[uint64][]uint64{}}
	if q.clusterBits < 9 || q.clusterBits > 21 {
		return nil, fmt.Errorf("qcow2: bad cluster size 2^%d", q.clusterBits)
	}
	if be.Uint32(h[32:]) != 0 {
		return nil, errors.New("qcow2: encrypted images are not supported")
	}
	if version == 3 {
		if _, err := r.ReadAt(h[72:104], 72); err != nil {
			return nil, fmt.Errorf("qcow2: read header: %w", err)
		}
		// Bit 0 (dirty) and 1 (corrupt) do not change how data is
		// found; the others (external data file, compression type,
		// extended L2) do.
		if inc := be.Uint64(h[72:]); inc&^3 != 0 {
			return nil, fmt.Errorf("qcow2: unsupported incompatible features %#x", inc)
		}
	}
	l1Size := uint64(be.Uint32(h[36:]))
	if l1Size*8 > maxL1Bytes {
		return nil, fmt.Errorf("qcow2: L1 table of %d entries is too large", l1Size)
	}
	// The L1 table must cover the whole disk.
	perL1 := uint64(1) << (2*q.clusterBits - 3)
	if need := (uint64(q.size) + perL1 - 1) / perL1; l1Size < need {
		return nil, fmt.Errorf("qcow2: L1 table has %d entries, a %d-byte disk needs %d", l1Size, q.size, need)
	}
	buf := make([]byte, l1Size*8)
	if _, err := r.ReadAt(buf, int64(be.Uint64(h[40:]))); err != nil {
		return nil, fmt.Errorf("qcow2: read L1 table: %w", err)
	}
	q.l1 = make([]uint64, l1Size)
	for i := range q.l1 {
		q.l1[i] = be.Uint64(buf[i*8:])
	}
	return q, nil
}

// Size is the guest disk's size in bytes.
func (q *Disk) Size() int64 { return q.size }

// ReadAt reads guest bytes; unallocated clusters read as zeros.
func (q *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("qcow2: negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= q.size {
			return n, io.EOF
		}
		csize := int64(1) << q.clusterBits
		within := off & (csize - 1)
		chunk := min(int64(len(p)-n), csize-within, q.size-off)
		host, err := q.hostOffset(off)
		if err != nil {
			return n, err
		}
		dst := p[n : n+int(chunk)]
		if host == 0 {
			clear(dst)
		} else if _, err := q.r.ReadAt(dst, host+within); err != nil {
			return n, fmt.Errorf("qcow2: read cluster at host offset %d: %w", host, err)
		}
		n += int(chunk)
		off += chunk
	}
	return n, nil
}

// hostOffset maps the guest cluster holding off to its host offset, 0
// when it reads as zeros.
func (q *Disk) hostOffset(off int64) (int64, error) {
	l2Bits := q.clusterBits - 3
	cluster := uint64(off) >> q.clusterBits
	l1i := cluster >> l2Bits
	if l1i >= uint64(len(q.l1)) {
		return 0, nil
	}
	l2Off := q.l1[l1i] & offsetMask
	if l2Off == 0 {
		return 0, nil
	}
	l2, ok := q.l2[l2Off]
	if !ok {
		buf := make([]byte, 1<<q.clusterBits)
		if _, err := q.r.ReadAt(buf, int64(l2Off)); err != nil {
			return 0, fmt.Errorf("qcow2: read L2 table at %d: %w", l2Off, err)
		}
		l2 = make([]uint64, len(buf)/8)
		for i := range l2 {
			l2[i] = binary.BigEndian.Uint64(buf[i*8:])
		}
		q.l2[l2Off] = l2
	}
	e := l2[cluster&(1<<l2Bits-1)]
	if e&compressedFlag != 0 {
		return 0, errors.New("qcow2: compressed clusters are not supported")
	}
	if e&zeroFlag != 0 {
		return 0, nil
	}
	return int64(e & offsetMask), nil
}
