// Package kmodtest makes kernel modules for tests.
package kmodtest

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// ModuleELF builds a minimal ELF64 relocatable object holding only a
// .modinfo section, as the kernel's module loader and depmod read it.
func ModuleELF(t testing.TB, modinfo string) []byte {
	t.Helper()
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	var b bytes.Buffer
	le := binary.LittleEndian
	const ehsize, shentsize = 64, 64
	infoOff := int64(ehsize)
	strOff := infoOff + int64(len(modinfo))
	shOff := strOff + int64(len(shstr))
	ident := [16]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}
	b.Write(ident[:])
	binary.Write(&b, le, uint16(1))  // ET_REL
	binary.Write(&b, le, uint16(62)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, uint64(shOff))
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // shnum
	binary.Write(&b, le, uint16(2)) // shstrndx
	b.WriteString(modinfo)
	b.WriteString(shstr)
	section := func(name uint32, typ uint32, off, size int64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, uint64(off))
		binary.Write(&b, le, uint64(size))
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint64(1))
		binary.Write(&b, le, uint64(0))
	}
	section(0, 0, 0, 0)
	section(1, 1, infoOff, int64(len(modinfo))) // .modinfo, PROGBITS
	section(10, 3, strOff, int64(len(shstr)))   // .shstrtab, STRTAB
	return b.Bytes()
}
