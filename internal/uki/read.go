package uki

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/keelos/keel/internal/pecoff"
)

// Image is a UKI opened for reading its sections in place.
type Image struct {
	r        io.ReaderAt
	sections []pecoff.Section
}

// Open reads the section table of r, a PE image of size bytes; only the
// headers are read.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	l, err := pecoff.Read(r, size)
	if err != nil {
		return nil, fmt.Errorf("uki: %w", err)
	}
	return &Image{r: r, sections: l.Sections}, nil
}

// Section returns the first section called name (".linux", ".initrd", …):
// its data as the file holds it, VirtualSize bytes long, not the zeros
// that pad it to the file alignment, which a decompressor would take for
// a bad frame.
func (im *Image) Section(name string) (*io.SectionReader, error) {
	for _, s := range im.sections {
		if !sectionNamed(s.Name, name) {
			continue
		}
		size := s.RawSize
		if s.VirtualSize != 0 && s.VirtualSize < size {
			size = s.VirtualSize
		}
		return io.NewSectionReader(im.r, int64(s.RawOffset), int64(size)), nil
	}
	return nil, errors.New("uki: no " + name + " section")
}

// sectionNamed matches a section name, NULs trimmed, against name. UKIs
// keel built on arm64 stubs before AddSections cleared the new headers
// carry the stub's NOP padding in the unused bytes of short names (which
// firmware ignores: it looks at names, sizes and offsets), so the name
// may go on with bytes that are not name characters.
func sectionNamed(field, name string) bool {
	rest, ok := strings.CutPrefix(field, name)
	if !ok {
		return false
	}
	for _, c := range []byte(rest) {
		if c == 0 {
			return true
		}
		if c == '.' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return false // a longer name, e.g. ".initrd2"
		}
	}
	return true
}
