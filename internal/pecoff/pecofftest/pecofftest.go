// Package pecofftest builds small PE32+ EFI images for the tests of the
// packages that read and sign them.
package pecofftest

import "encoding/binary"

// Section is one section of a test image.
type Section struct {
	Name string
	Data []byte
	// Gap is written before the section's raw data, outside any section
	// (as the COFF symbol table a linker leaves between sections).
	Gap []byte
}

const (
	peOffset      = 0x80
	optHeaderSize = 240 // PE32+ with 16 data directories
	headerSize    = 0x400
	fileAlign     = 0x200
	sectionAlign  = 0x1000
)

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// Image is an x86-64 EFI application image holding secs, in order,
// followed by trailer (data after the last section). The code does not
// run; the headers are what loaders and signing tools check.
func Image(secs []Section, trailer []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, headerSize)
	copy(b, "MZ")
	le.PutUint32(b[0x3c:], peOffset)
	copy(b[peOffset:], "PE\x00\x00")
	coff := peOffset + 4
	le.PutUint16(b[coff:], 0x8664) // Machine: x86-64
	le.PutUint16(b[coff+2:], uint16(len(secs)))
	le.PutUint16(b[coff+16:], optHeaderSize)
	le.PutUint16(b[coff+18:], 0x2022) // executable, large address aware, DLL
	opt := coff + 20
	le.PutUint16(b[opt:], 0x20b) // PE32+
	le.PutUint32(b[opt+32:], sectionAlign)
	le.PutUint32(b[opt+36:], fileAlign)
	le.PutUint32(b[opt+60:], headerSize)
	le.PutUint16(b[opt+68:], 10) // Subsystem: EFI application
	le.PutUint32(b[opt+108:], 16)
	table := opt + optHeaderSize
	va := sectionAlign
	for i, s := range secs {
		b = append(b, s.Gap...)
		b = append(b, make([]byte, alignUp(len(b), fileAlign)-len(b))...)
		h := b[table+40*i:][:40]
		copy(h, s.Name)
		raw := alignUp(len(s.Data), fileAlign)
		le.PutUint32(h[8:], uint32(len(s.Data)))
		le.PutUint32(h[12:], uint32(va))
		le.PutUint32(h[16:], uint32(raw))
		le.PutUint32(h[20:], uint32(len(b)))
		le.PutUint32(h[36:], 0x40000040) // initialized data, readable
		if i == 0 {
			le.PutUint32(b[opt+16:], uint32(va)) // AddressOfEntryPoint
		}
		b = append(b, s.Data...)
		b = append(b, make([]byte, raw-len(s.Data))...)
		va += alignUp(max(len(s.Data), 1), sectionAlign)
	}
	le.PutUint32(b[opt+56:], uint32(va)) // SizeOfImage
	return append(b, trailer...)
}
