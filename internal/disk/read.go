package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Part is a partition found in a GPT partition table.
type Part struct {
	Number int // its entry's place in the table, from 1
	Type   gpt.Type
	Name   string
	Extent
}

// Table is a disk's partitions, in table order.
type Table []Part

// ReadGPT reads the partition table of r, a disk of size bytes with
// 512-byte sectors (all keel writes). Unused entries are left out; every
// partition returned lies inside the disk.
func ReadGPT(r io.ReaderAt, size int64) (Table, error) {
	var h [92]byte
	if _, err := r.ReadAt(h[:], sectorSize); err != nil {
		return nil, fmt.Errorf("GPT: read header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return nil, errors.New("GPT: no header at LBA 1")
	}
	le := binary.LittleEndian
	entriesLBA := int64(le.Uint64(h[72:]))
	count := int64(le.Uint32(h[80:]))
	esize := int64(le.Uint32(h[84:]))
	// The table is read whole: bound it by the spec's sizes and the disk,
	// or a header could ask for terabytes.
	if esize < 128 || esize > 4096 || count > 1024 {
		return nil, fmt.Errorf("GPT: unusual partition table (%d entries of %d bytes)", count, esize)
	}
	if entriesLBA < 2 || entriesLBA > size/sectorSize || entriesLBA*sectorSize+count*esize > size {
		return nil, fmt.Errorf("GPT: partition table (%d entries of %d bytes at LBA %d) outside the %d-byte disk", count, esize, entriesLBA, size)
	}
	buf := make([]byte, count*esize)
	if _, err := r.ReadAt(buf, entriesLBA*sectorSize); err != nil {
		return nil, fmt.Errorf("GPT: read partition entries: %w", err)
	}
	var t Table
	for i := range count {
		e := buf[i*esize : (i+1)*esize]
		if allZero(e[:16]) {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		if first == 0 || last < first || last >= uint64(size/sectorSize) {
			return nil, fmt.Errorf("GPT: partition %d (sectors %d-%d) outside the %d-byte disk", i+1, first, last, size)
		}
		t = append(t, Part{
			Number: int(i + 1),
			Type:   guid(e[:16]),
			Name:   partName(e[56:128]),
			Extent: Extent{Start: int64(first) * sectorSize, Size: int64(last-first+1) * sectorSize},
		})
	}
	return t, nil
}

// ByType returns the first partition of type typ.
func (t Table) ByType(typ gpt.Type) (Part, bool) {
	for _, p := range t {
		if strings.EqualFold(string(p.Type), string(typ)) {
			return p, true
		}
	}
	return Part{}, false
}

// ByName returns the first partition called name.
func (t Table) ByName(name string) (Part, bool) {
	for _, p := range t {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// Section is the partition's content on the disk r.
func (p Part) Section(r io.ReaderAt) *io.SectionReader {
	return io.NewSectionReader(r, p.Start, p.Size)
}

// guid formats a GUID as GPT stores it: the first three fields
// little-endian, the rest in byte order.
func guid(b []byte) gpt.Type {
	le := binary.LittleEndian
	return gpt.Type(fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(b), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16]))
}

// partName decodes a partition name: UTF-16LE, NUL-terminated.
func partName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
