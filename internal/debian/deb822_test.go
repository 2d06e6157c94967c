package debian

import (
	"reflect"
	"strings"
	"testing"
)

func collect(t testing.TB, data string) ([]Paragraph, error) {
	t.Helper()
	var out []Paragraph
	err := ParseParagraphs(data, func(p Paragraph) error {
		out = append(out, append(Paragraph(nil), p...))
		return nil
	})
	return out, err
}

func TestParseParagraphs(t *testing.T) {
	in := "Package: a\nVersion: 1.0\r\nDescription: short\n long line\n .\n more\n\n\n# comment\nPackage: b\nSHA256:\n aa 1 x\n bb 2 y\n"
	got, err := collect(t, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []Paragraph{
		{{"Package", "a"}, {"Version", "1.0"}, {"Description", "short\n long line\n .\n more"}},
		{{"Package", "b"}, {"SHA256", "aa 1 x\n bb 2 y"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if v, ok := got[0].Get("version"); !ok || v != "1.0" {
		t.Errorf("Get is not case-insensitive: %q %v", v, ok)
	}
}

func TestParseParagraphsErrors(t *testing.T) {
	for _, in := range []string{" leading continuation\n", "Package: a\nno colon here\n", ": empty name\n", "Bad Name: x\n"} {
		if _, err := collect(t, in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParseParagraphs(f *testing.F) {
	f.Add("Package: a\nVersion: 1\n\nPackage: b\nDepends: c | d (>= 1)\n")
	f.Add("SHA256:\n aa 1 x\n\tbb 2 y\r\n\n")
	f.Add("# c\nA: \n  \nB:x\n")
	f.Fuzz(func(t *testing.T, data string) {
		paras, err := collect(t, data)
		if err != nil {
			return
		}
		for _, p := range paras {
			if len(p) == 0 {
				t.Fatal("empty paragraph reported")
			}
			for _, f := range p {
				if f.Name == "" || strings.ContainsAny(f.Name, ": \t\n") {
					t.Fatalf("bad field name %q", f.Name)
				}
				if f.Value != strings.Trim(f.Value, " \t\r") {
					t.Fatalf("value %q not trimmed", f.Value)
				}
				if !strings.Contains(data, f.Value) {
					t.Fatalf("value %q is not from the input", f.Value)
				}
				// Dependency parsing must cope with any value too.
				parseRelations(f.Value)
			}
		}
	})
}
