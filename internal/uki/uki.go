// Package uki builds a Unified Kernel Image: systemd-boot's EFI stub with the
// kernel, initrd, command line and os-release appended as PE sections.
//
// It does what ukify (or objcopy --add-section) does: new sections go after
// the stub's last one, at page-aligned virtual addresses and
// FileAlignment-aligned file offsets; the headers are updated in place and
// the PE checksum recomputed. The systemd 252 stub finds the payload by
// section name (.osrel, .cmdline, .uname, .linux, .initrd).
package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/keelos/keel/internal/pecoff"
)

// Section is one named blob to append.
type Section struct {
	Name string // at most 8 bytes, e.g. ".linux"
	Data []byte
}

// Build writes stub + sections .osrel, .cmdline, .linux and .initrd on w.
// Empty cmdline or osRelease leave their section out.
func Build(w io.Writer, stub, kernel, initrd []byte, cmdline, osRelease string) error {
	var secs []Section
	if osRelease != "" {
		secs = append(secs, Section{".osrel", []byte(osRelease)})
	}
	if cmdline != "" {
		secs = append(secs, Section{".cmdline", []byte(cmdline)})
	}
	secs = append(secs, Section{".linux", kernel}, Section{".initrd", initrd})
	return AddSections(w, stub, secs)
}

const (
	sectionHeaderSize = 40
	// Page alignment for the payload, as ukify does: the stub hands the
	// kernel and initrd to firmware and kernel by address.
	pageSize = 4096
	// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
	dataCharacteristics = 0x40000040
	securityDirectory   = 4
)

// arm64NOP is the little-endian encoding of the AArch64 NOP instruction.
var arm64NOP = []byte{0x1f, 0x20, 0x03, 0xd5}

// isPadding reports whether b, found at offset off of the file, holds
// only zeros or only (4-byte aligned) AArch64 NOPs.
func isPadding(b []byte, off uint64) bool {
	zero, nop := true, true
	for i, c := range b {
		zero = zero && c == 0
		nop = nop && c == arm64NOP[(off+uint64(i))%4]
	}
	return zero || nop
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) / a * a }

// AddSections writes stub with secs appended, in order, on w.
func AddSections(w io.Writer, stub []byte, secs []Section) error {
	f, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		return fmt.Errorf("uki: parse stub: %w", err)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		return fmt.Errorf("uki: stub is not PE32+ (optional header %T)", f.OptionalHeader)
	}
	if len(oh.DataDirectory) > securityDirectory && oh.DataDirectory[securityDirectory].Size != 0 {
		return fmt.Errorf("uki: stub is signed; appending sections would invalidate it, use an unsigned stub")
	}
	if len(f.Sections) == 0 {
		return fmt.Errorf("uki: stub has no sections")
	}

	peOff := uint64(binary.LittleEndian.Uint32(stub[0x3c:]))
	tableOff := peOff + 4 + 20 + uint64(f.FileHeader.SizeOfOptionalHeader)
	tableEnd := tableOff + uint64(len(f.Sections)+len(secs))*sectionHeaderSize
	if tableEnd > uint64(oh.SizeOfHeaders) {
		return fmt.Errorf("uki: stub header has room for %d more section headers, need %d",
			(uint64(oh.SizeOfHeaders)-tableOff)/sectionHeaderSize-uint64(len(f.Sections)), len(secs))
	}
	// The new headers overwrite what follows the table; it must be padding.
	old := tableOff + uint64(len(f.Sections))*sectionHeaderSize
	// The arm64 linker fills the header page with NOP instructions
	// instead of zeros; no section maps it, so it is padding all the same.
	if !isPadding(stub[old:tableEnd], old) {
		return fmt.Errorf("uki: stub header space after the section table is not empty")
	}

	fileAlign := uint64(oh.FileAlignment)
	secAlign := max(uint64(oh.SectionAlignment), pageSize)
	last := f.Sections[len(f.Sections)-1]
	va := alignUp(uint64(last.VirtualAddress)+uint64(max(last.VirtualSize, last.Size)), secAlign)
	// Like ukify, keep whatever follows the last section (Debian's stub
	// carries a COFF symbol table there) and append after it.
	off := alignUp(uint64(len(stub)), fileAlign)

	out := make([]byte, 0, int(off)+len(secs)*int(pageSize)+totalLen(secs))
	out = append(out, stub...)
	out = append(out, make([]byte, off-uint64(len(stub)))...)
	le := binary.LittleEndian
	initData := uint64(oh.SizeOfInitializedData)
	for i, s := range secs {
		if len(s.Name) > 8 {
			return fmt.Errorf("uki: section name %q longer than 8 bytes", s.Name)
		}
		raw := alignUp(uint64(len(s.Data)), fileAlign)
		if va+uint64(len(s.Data)) > 0xffffffff || off+raw > 0xffffffff {
			return fmt.Errorf("uki: section %s does not fit in a 4 GiB image", s.Name)
		}
		h := out[old+uint64(i)*sectionHeaderSize:][:sectionHeaderSize]
		clear(h) // the padding may be NOPs, not zeros
		copy(h[0:8], s.Name)
		le.PutUint32(h[8:], uint32(len(s.Data))) // VirtualSize
		le.PutUint32(h[12:], uint32(va))         // VirtualAddress
		le.PutUint32(h[16:], uint32(raw))        // SizeOfRawData
		le.PutUint32(h[20:], uint32(off))        // PointerToRawData
		le.PutUint32(h[36:], dataCharacteristics)
		out = append(out, s.Data...)
		out = append(out, make([]byte, raw-uint64(len(s.Data)))...)
		initData += raw
		off += raw
		va = alignUp(va+uint64(len(s.Data)), secAlign)
	}

	// Patch the COFF and optional headers.
	le.PutUint16(out[peOff+4+2:], uint16(len(f.Sections)+len(secs))) // NumberOfSections
	opt := peOff + 4 + 20
	le.PutUint32(out[opt+8:], uint32(min(initData, 0xffffffff))) // SizeOfInitializedData
	le.PutUint32(out[opt+56:], uint32(va))                       // SizeOfImage (va is aligned past the last section)
	le.PutUint32(out[opt+64:], 0)
	le.PutUint32(out[opt+64:], pecoff.Checksum(out, int(opt+64))) // CheckSum
	_, err = w.Write(out)
	if err != nil {
		return fmt.Errorf("uki: write: %w", err)
	}
	return nil
}

func totalLen(secs []Section) int {
	n := 0
	for _, s := range secs {
		n += len(s.Data)
	}
	return n
}
