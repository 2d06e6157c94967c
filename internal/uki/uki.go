// Package uki builds a Unified Kernel Image: systemd-boot's EFI stub with the
// kernel, initrd, command line and os-release appended as PE sections, and
// reads those sections back.
//
// It does what ukify (or objcopy --add-section) does: new sections go after
// the stub's last one, at page-aligned virtual addresses and
// FileAlignment-aligned file offsets; the headers are updated in place and
// the PE checksum recomputed. The systemd 252 stub finds the payload by
// section name (.osrel, .cmdline, .uname, .linux, .initrd).
package uki

import (
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
	pe32PlusMagic       = 0x20b
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
	l, err := pecoff.Parse(stub)
	if err != nil {
		return fmt.Errorf("uki: parse stub: %w", err)
	}
	le := binary.LittleEndian
	// The optional header's fields read here all come before the data
	// directories, which Parse found inside it.
	opt := uint64(l.OptionalHeader)
	if magic := le.Uint16(stub[opt:]); magic != pe32PlusMagic {
		return fmt.Errorf("uki: stub is not PE32+ (optional header magic %#x)", magic)
	}
	if l.CertSize != 0 {
		return fmt.Errorf("uki: stub is signed; appending sections would invalidate it, use an unsigned stub")
	}
	stubSecs := uint64(len(l.Sections))
	tableOff := uint64(l.SectionTable)
	tableEnd := tableOff + (stubSecs+uint64(len(secs)))*sectionHeaderSize
	if tableEnd > uint64(l.SizeOfHeaders) {
		return fmt.Errorf("uki: stub header has room for %d more section headers, need %d",
			(uint64(l.SizeOfHeaders)-tableOff)/sectionHeaderSize-stubSecs, len(secs))
	}
	// The new headers overwrite what follows the table; it must be padding.
	old := tableOff + stubSecs*sectionHeaderSize
	// The arm64 linker fills the header page with NOP instructions
	// instead of zeros; no section maps it, so it is padding all the same.
	if !isPadding(stub[old:tableEnd], old) {
		return fmt.Errorf("uki: stub header space after the section table is not empty")
	}

	fileAlign := uint64(le.Uint32(stub[opt+36:]))
	if fileAlign == 0 {
		return fmt.Errorf("uki: stub has a FileAlignment of 0")
	}
	secAlign := max(uint64(le.Uint32(stub[opt+32:])), pageSize)
	last := l.Sections[len(l.Sections)-1]
	va := alignUp(uint64(last.VirtualAddress)+uint64(max(last.VirtualSize, last.RawSize)), secAlign)
	// Like ukify, keep whatever follows the last section (Debian's stub
	// carries a COFF symbol table there) and append after it.
	off := alignUp(uint64(len(stub)), fileAlign)

	out := make([]byte, 0, int(off)+len(secs)*int(pageSize)+totalLen(secs))
	out = append(out, stub...)
	out = append(out, make([]byte, off-uint64(len(stub)))...)
	initData := uint64(le.Uint32(stub[opt+8:]))
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
	le.PutUint16(out[opt-20+2:], uint16(stubSecs)+uint16(len(secs))) // NumberOfSections
	le.PutUint32(out[opt+8:], uint32(min(initData, 0xffffffff)))     // SizeOfInitializedData
	le.PutUint32(out[opt+56:], uint32(va))                           // SizeOfImage (va is aligned past the last section)
	le.PutUint32(out[l.ChecksumOffset:], pecoff.Checksum(out, l.ChecksumOffset))
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
