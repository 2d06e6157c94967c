// Package qcow2 writes a raw disk image as a qcow2 (version 3) image.
//
// The writer streams: a first pass over the source finds the clusters that
// hold non-zero bytes, all metadata is then laid out up front, and a second
// pass writes header, tables and data in one sequential sweep. Only
// non-zero clusters are stored; the result is a single-file image with no
// backing file, no snapshots and no compression.
package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	clusterBits   = 16
	clusterSize   = 1 << clusterBits
	refcountOrder = 4 // 16-bit refcounts, qemu-img's default
	headerLength  = 104

	l2Entries       = clusterSize / 8                           // guest clusters per L2 table
	refcountEntries = clusterSize * 8 / (1 << refcountOrder)    // host clusters per refcount block
	tableEntries    = clusterSize / 8                           // refcount blocks per refcount table cluster
	copiedFlag      = uint64(1) << 63                           // "refcount is exactly 1"
	headerExtEnd    = 0                                         // header extension type: end of list
	magic           = uint32('Q')<<24 | 'F'<<16 | 'I'<<8 | 0xfb // "QFI\xfb"
)

// layout is where every piece of the image goes, in host clusters.
type layout struct {
	size       int64
	l1Size     int   // L1 entries
	l1Off      int64 // host offset of the L1 table
	l1Clusters int64
	rtOff      int64 // refcount table
	rtClusters int64
	rbOff      int64 // first refcount block
	rbClusters int64
	l2Off      int64   // first L2 table
	l2Tables   []int   // L1 indexes that have an L2 table, ascending
	dataOff    int64   // first data cluster
	data       []int64 // guest cluster indexes stored, ascending
	total      int64   // host clusters in the file
}

// Write encodes the size bytes of src as a qcow2 image on w.
func Write(w io.Writer, src io.ReaderAt, size int64) error {
	if size < 0 {
		return fmt.Errorf("qcow2: negative size %d", size)
	}
	data, err := nonZeroClusters(src, size)
	if err != nil {
		return err
	}
	l := plan(size, data)
	if err := l.writeMetadata(w); err != nil {
		return err
	}
	buf := make([]byte, clusterSize)
	for _, c := range data {
		clear(buf)
		if _, err := readCluster(src, size, c, buf); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("qcow2: write data: %w", err)
		}
	}
	return nil
}

// readCluster reads guest cluster c into buf (zero-padded past size).
func readCluster(src io.ReaderAt, size, c int64, buf []byte) (int, error) {
	off := c * clusterSize
	n := min(int64(clusterSize), size-off)
	got, err := src.ReadAt(buf[:n], off)
	if int64(got) == n {
		return got, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return got, fmt.Errorf("qcow2: read cluster at %d: %w", off, err)
}

func nonZeroClusters(src io.ReaderAt, size int64) ([]int64, error) {
	var out []int64
	buf := make([]byte, clusterSize)
	n := (size + clusterSize - 1) / clusterSize
	for c := int64(0); c < n; c++ {
		got, err := readCluster(src, size, c, buf)
		if err != nil {
			return nil, err
		}
		if !allZero(buf[:got]) {
			out = append(out, c)
		}
	}
	return out, nil
}

var zeroCluster = make([]byte, clusterSize)

func allZero(b []byte) bool { return bytes.Equal(b, zeroCluster[:len(b)]) }

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func plan(size int64, data []int64) layout {
	l := layout{size: size, data: data}
	guestClusters := ceilDiv(size, clusterSize)
	l.l1Size = int(ceilDiv(guestClusters, l2Entries))
	l.l1Clusters = ceilDiv(int64(l.l1Size)*8, clusterSize)
	for _, c := range data {
		i := int(c / l2Entries)
		if len(l.l2Tables) == 0 || l.l2Tables[len(l.l2Tables)-1] != i {
			l.l2Tables = append(l.l2Tables, i)
		}
	}
	// The refcount structures must count themselves: grow them until the
	// total they cover stops changing.
	fixed := 1 + l.l1Clusters + int64(len(l.l2Tables)) + int64(len(data))
	l.rbClusters, l.rtClusters = 1, 1
	for {
		total := fixed + l.rbClusters + l.rtClusters
		rb := ceilDiv(total, refcountEntries)
		rt := ceilDiv(rb, tableEntries)
		if rb == l.rbClusters && rt == l.rtClusters {
			l.total = total
			break
		}
		l.rbClusters, l.rtClusters = rb, rt
	}
	l.l1Off = clusterSize
	l.rtOff = l.l1Off + l.l1Clusters*clusterSize
	l.rbOff = l.rtOff + l.rtClusters*clusterSize
	l.l2Off = l.rbOff + l.rbClusters*clusterSize
	l.dataOff = l.l2Off + int64(len(l.l2Tables))*clusterSize
	return l
}

// writeMetadata writes everything before the first data cluster.
func (l *layout) writeMetadata(w io.Writer) error {
	hdr := make([]byte, clusterSize)
	be := binary.BigEndian
	be.PutUint32(hdr[0:], magic)
	be.PutUint32(hdr[4:], 3)
	be.PutUint32(hdr[20:], clusterBits)
	be.PutUint64(hdr[24:], uint64(l.size))
	be.PutUint32(hdr[36:], uint32(l.l1Size))
	if l.l1Size > 0 {
		be.PutUint64(hdr[40:], uint64(l.l1Off))
	}
	be.PutUint64(hdr[48:], uint64(l.rtOff))
	be.PutUint32(hdr[56:], uint32(l.rtClusters))
	be.PutUint32(hdr[96:], refcountOrder)
	be.PutUint32(hdr[100:], headerLength)
	be.PutUint32(hdr[headerLength:], headerExtEnd) // end of header extensions
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("qcow2: write header: %w", err)
	}

	l1 := make([]byte, l.l1Clusters*clusterSize)
	for n, i := range l.l2Tables {
		be.PutUint64(l1[i*8:], uint64(l.l2Off+int64(n)*clusterSize)|copiedFlag)
	}
	if _, err := w.Write(l1); err != nil {
		return fmt.Errorf("qcow2: write L1 table: %w", err)
	}

	rt := make([]byte, l.rtClusters*clusterSize)
	for i := int64(0); i < l.rbClusters; i++ {
		be.PutUint64(rt[i*8:], uint64(l.rbOff+i*clusterSize))
	}
	if _, err := w.Write(rt); err != nil {
		return fmt.Errorf("qcow2: write refcount table: %w", err)
	}

	// Every host cluster is used exactly once.
	rb := make([]byte, l.rbClusters*clusterSize)
	for i := int64(0); i < l.total; i++ {
		be.PutUint16(rb[i*2:], 1)
	}
	if _, err := w.Write(rb); err != nil {
		return fmt.Errorf("qcow2: write refcount blocks: %w", err)
	}

	l2 := make([]byte, clusterSize)
	next := 0 // index into l.data
	for _, i := range l.l2Tables {
		clear(l2)
		for ; next < len(l.data) && int(l.data[next]/l2Entries) == i; next++ {
			host := l.dataOff + int64(next)*clusterSize
			be.PutUint64(l2[(l.data[next]%l2Entries)*8:], uint64(host)|copiedFlag)
		}
		if _, err := w.Write(l2); err != nil {
			return fmt.Errorf("qcow2: write L2 table: %w", err)
		}
	}
	return nil
}
