package spec

import (
	"os"
	"reflect"
	"testing"
)

// FuzzParse checks that no document makes the parser panic, and that every
// accepted document survives Marshal and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	if ref, err := os.ReadFile("../../build.toml"); err == nil {
		f.Add(ref)
	}
	f.Add([]byte(full))
	f.Add([]byte(fullPackage))
	f.Add([]byte(kernel + "[[service]]\nname = \"a\"\nimage = \"./a\"\nsysctl = { x = { y = 1 } }\n"))
	f.Add([]byte("kernel.image = \"./k\"\n[[file]]\npath = \"/x\"\ncontents = \"\\u0000\\r\"\n"))
	f.Add([]byte("name = 0x10\narch = []\n[output]\nformats = [\"iso\"]\n"))
	f.Add([]byte("[kernel]\nimage = 'x'\ncmdline = '''\nmulti\nline'''\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Parse("fuzz.toml", doc)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out, err := Marshal(s)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		s2, err := Parse("fuzz.toml", out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip differs:\n%#v\n%#v\n%s", s, s2, out)
		}
		// Package documents go through the same decoder.
		if pk, err := ParsePackage("package.toml", doc); err == nil {
			b, _ := MarshalPackage(pk)
			if pk2, err := ParsePackage("package.toml", b); err != nil || !reflect.DeepEqual(pk, pk2) {
				t.Fatalf("package round trip: %v\n%s", err, b)
			}
		}
	})
}
