package pecoff_test

import (
	"bytes"
	"debug/pe"
	"testing"

	"github.com/keelos/keel/internal/pecoff"
	"github.com/keelos/keel/internal/pecoff/pecofftest"
)

func testImage() []byte {
	return pecofftest.Image([]pecofftest.Section{
		{Name: ".text", Data: []byte{0xc3}},
		{Name: ".linux", Data: bytes.Repeat([]byte("k"), 1000), Gap: []byte("symbols")},
	}, []byte("trailer"))
}

// TestParseAgreesWithDebugPE reads the same image with the standard
// library's reader.
func TestParseAgreesWithDebugPE(t *testing.T) {
	img := testImage()
	l, err := pecoff.Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Sections) != len(f.Sections) {
		t.Fatalf("%d sections, debug/pe %d", len(l.Sections), len(f.Sections))
	}
	for i, s := range f.Sections {
		g := l.Sections[i]
		if g.Name != s.Name || g.VirtualSize != s.VirtualSize || g.VirtualAddress != s.VirtualAddress || g.RawSize != s.Size || g.RawOffset != s.Offset {
			t.Errorf("section %d: %+v, debug/pe %+v", i, g, s.SectionHeader)
		}
		want, _ := s.Data()
		if got := g.Data(img); !bytes.Equal(got, want[:s.VirtualSize]) {
			t.Errorf("%s: data differs", s.Name)
		}
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if int(oh.SizeOfHeaders) != l.SizeOfHeaders || l.CertSize != 0 {
		t.Errorf("layout %+v", l)
	}
}

func TestChecksumIgnoresItsField(t *testing.T) {
	img := testImage()
	l, _ := pecoff.Parse(img)
	a := pecoff.Checksum(img, l.ChecksumOffset)
	img[l.ChecksumOffset] = 0xff
	if pecoff.Checksum(img, l.ChecksumOffset) != a {
		t.Error("the checksum field counts in the checksum")
	}
	img[l.ChecksumOffset+8] ^= 1
	if pecoff.Checksum(img, l.ChecksumOffset) == a {
		t.Error("a changed byte leaves the checksum as it was")
	}
}

// FuzzParse feeds Parse damaged images: it must not panic, and what it
// returns must lie inside the file.
func FuzzParse(f *testing.F) {
	img := testImage()
	f.Add(img)
	f.Add(img[:0x200])
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := pecoff.Parse(b)
		if err != nil {
			return
		}
		if l.CertDirOffset+8 > l.SizeOfHeaders || l.ChecksumOffset+4 > l.SizeOfHeaders || l.SizeOfHeaders > len(b) ||
			l.CertTable+l.CertSize > len(b) {
			t.Fatalf("layout outside the file: %+v (%d bytes)", l, len(b))
		}
		for _, s := range l.Sections {
			if s.RawSize != 0 && int(s.RawOffset)+int(s.RawSize) > len(b) {
				t.Fatalf("section outside the file: %+v", s)
			}
			if s.VirtualSize < 1<<20 {
				s.Data(b)
			}
		}
	})
}
