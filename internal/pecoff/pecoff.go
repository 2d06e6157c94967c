// Package pecoff reads where things are in a PE/COFF image file: the
// checksum field, the certificate table and its directory entry, the
// section table. Authenticode signing, PCR prediction and the UKI reader
// and writer need these file offsets, which debug/pe does not give, and
// must check them against the file's length before trusting any of them.
package pecoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Section is one section table entry.
type Section struct {
	Name           string // up to 8 bytes, NULs trimmed
	VirtualSize    uint32
	VirtualAddress uint32
	RawSize        uint32 // SizeOfRawData
	RawOffset      uint32 // PointerToRawData
}

// Layout is where an image's signing-relevant fields are, as file offsets.
type Layout struct {
	// OptionalHeader and SectionTable are where those start, for the
	// fields Layout does not name; the optional header holds at least
	// the data directories up to the certificate table's.
	OptionalHeader, SectionTable int
	ChecksumOffset               int // OptionalHeader.CheckSum (4 bytes)
	CertDirOffset                int // the certificate table's data directory entry (8 bytes)
	SizeOfHeaders                int
	// CertTable and CertSize are the certificate table's file offset and
	// size (0, 0 when the image is unsigned).
	CertTable, CertSize int
	Sections            []Section
}

const (
	pe32Magic     = 0x10b
	pe32PlusMagic = 0x20b
	// securityDirectory is IMAGE_DIRECTORY_ENTRY_SECURITY's index.
	securityDirectory = 4
	sectionHeaderSize = 40
	// maxSections is the PE format's limit (the section count is 16 bits,
	// but loaders refuse more than 96).
	maxSections = 96
	// maxHeaders bounds what Read reads of a file's headers; real images
	// have 1 or 4 KiB of them.
	maxHeaders = 1 << 20
)

var le = binary.LittleEndian

// Parse reads b's layout, checking every offset it returns lies inside b.
func Parse(b []byte) (*Layout, error) { return parse(b, int64(len(b))) }

// Read reads the layout of the size-byte image r holds, reading only its
// headers, and checks every offset it returns lies inside the image.
func Read(r io.ReaderAt, size int64) (*Layout, error) {
	head := make([]byte, min(size, maxHeaders))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		return nil, fmt.Errorf("read PE headers: %w", err)
	}
	return parse(head, size)
}

// parse reads the layout from b, the first bytes of an image of size
// bytes: at least its headers.
func parse(b []byte, size int64) (*Layout, error) {
	if len(b) < 0x40 || b[0] != 'M' || b[1] != 'Z' {
		return nil, errors.New("not a PE image: no MZ header")
	}
	pe := int(le.Uint32(b[0x3c:]))
	if pe < 0x40 || pe > len(b)-24 || string(b[pe:pe+4]) != "PE\x00\x00" {
		return nil, errors.New("not a PE image: no PE signature at the offset the MZ header gives")
	}
	nsec := int(le.Uint16(b[pe+6:]))
	optSize := int(le.Uint16(b[pe+20:]))
	opt := pe + 24
	if nsec == 0 || nsec > maxSections {
		return nil, fmt.Errorf("PE image has %d sections, want 1 to %d", nsec, maxSections)
	}
	if opt+optSize > len(b) || optSize < 2 {
		return nil, errors.New("PE optional header runs past the end of the file")
	}
	var dirs, count int // offset of the data directories and of NumberOfRvaAndSizes
	switch le.Uint16(b[opt:]) {
	case pe32Magic:
		dirs, count = opt+96, opt+92
	case pe32PlusMagic:
		dirs, count = opt+112, opt+108
	default:
		return nil, fmt.Errorf("PE optional header magic %#x, want PE32 or PE32+", le.Uint16(b[opt:]))
	}
	certDir := dirs + securityDirectory*8
	if certDir+8 > opt+optSize || le.Uint32(b[count:]) <= securityDirectory {
		return nil, errors.New("PE image has no certificate table directory entry")
	}
	l := &Layout{
		OptionalHeader: opt,
		SectionTable:   opt + optSize,
		ChecksumOffset: opt + 64,
		CertDirOffset:  certDir,
		SizeOfHeaders:  int(le.Uint32(b[opt+60:])),
		CertTable:      int(le.Uint32(b[certDir:])),
		CertSize:       int(le.Uint32(b[certDir+4:])),
	}
	table := opt + optSize
	if len(b) < l.SizeOfHeaders && int64(len(b)) < size {
		return nil, fmt.Errorf("PE headers of %d bytes: more than %d", l.SizeOfHeaders, len(b))
	}
	if table+nsec*sectionHeaderSize > l.SizeOfHeaders || l.SizeOfHeaders > len(b) {
		return nil, errors.New("PE section table or SizeOfHeaders runs past the headers or the file")
	}
	if l.CertSize == 0 {
		l.CertTable = 0
	} else if int64(l.CertTable) < int64(l.SizeOfHeaders) || int64(l.CertTable) > size || int64(l.CertSize) > size-int64(l.CertTable) {
		return nil, fmt.Errorf("PE certificate table (%d bytes at %d) lies outside the file", l.CertSize, l.CertTable)
	}
	for i := range nsec {
		h := b[table+i*sectionHeaderSize:][:sectionHeaderSize]
		name := h[:8]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		s := Section{
			Name:           string(name),
			VirtualSize:    le.Uint32(h[8:]),
			VirtualAddress: le.Uint32(h[12:]),
			RawSize:        le.Uint32(h[16:]),
			RawOffset:      le.Uint32(h[20:]),
		}
		if s.RawSize != 0 && (int(s.RawOffset) < l.SizeOfHeaders || int64(s.RawOffset)+int64(s.RawSize) > size) {
			return nil, fmt.Errorf("PE section %q (%d bytes at %d) lies outside the file", s.Name, s.RawSize, s.RawOffset)
		}
		l.Sections = append(l.Sections, s)
	}
	return l, nil
}

// Data is s's contents as the loader maps them: VirtualSize bytes, the
// part past the raw data zero. b is the file Parse read s from.
func (s Section) Data(b []byte) []byte {
	var raw []byte
	if s.RawSize != 0 {
		raw = b[s.RawOffset:][:min(s.RawSize, s.VirtualSize)]
	}
	if s.VirtualSize <= s.RawSize {
		return raw
	}
	return append(append([]byte(nil), raw...), make([]byte, s.VirtualSize-uint32(len(raw)))...)
}

// Checksum is the PE image checksum of b (as Windows' CheckSumMappedFile
// computes it): a 16-bit one's-complement-style sum of the file, the 4
// bytes at field (the checksum itself) counted as zero, plus the length.
func Checksum(b []byte, field int) uint32 {
	var sum uint64
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		if i == field || i == field+2 {
			continue
		}
		sum += uint64(le.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}
