package debian

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// debOf is a .deb of control (a control file) and data (the data.tar
// member's uncompressed bytes), its members compressed as ext says.
func debOf(t testing.TB, control string, data []byte, ext string) string {
	t.Helper()
	return writeDeb(t, [][2]string{
		{"debian-binary", "2.0\n"},
		{"control.tar" + ext, string(compress(t, ext, tarOf(t, map[string]string{"./control": control})))},
		{"data.tar" + ext, string(compress(t, ext, data))},
	})
}

// FuzzDeb checks that no file makes the .deb reader panic or run away:
// the ar walk, the decompressors and the control file's parsing. Reads of
// data.tar are bounded here, as the caller's are by what it unpacks.
func FuzzDeb(f *testing.F) {
	data := tarOf(f, map[string]string{"./bin/hello": "#!/bin/sh\n"})
	for _, ext := range []string{"", ".gz", ".xz", ".zst"} {
		b, err := os.ReadFile(debOf(f, "Package: hello\nVersion: 1.0\nDepends: a (>= 1) | b\n", data, ext))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(arMagic + "data.tar/       0           0     0     100644  99999999999`\n"))
	path := filepath.Join(f.TempDir(), "fuzz.deb")
	f.Fuzz(func(t *testing.T, deb []byte) {
		if err := os.WriteFile(path, deb, 0o644); err != nil {
			t.Fatal(err)
		}
		if fields, err := Control(path); err == nil {
			for k, v := range fields {
				if k == "" {
					t.Fatalf("empty field name (value %q)", v)
				}
			}
		}
		rc, err := DataTar(path)
		if err != nil {
			return
		}
		defer rc.Close()
		io.CopyN(io.Discard, rc, 64<<20)
	})
}

// FuzzDebRoundTrip checks that Control reads the control file's first
// paragraph and DataTar gives back data.tar's bytes, for every
// compression a .deb may use.
func FuzzDebRoundTrip(f *testing.F) {
	f.Add("Package: hello\nVersion: 1.0\nDescription: hi\n there\n", []byte("data"), uint8(0))
	f.Add("Package: a\n\nPackage: b\n", []byte{}, uint8(3))
	exts := []string{"", ".gz", ".xz", ".zst"}
	f.Fuzz(func(t *testing.T, control string, data []byte, ext uint8) {
		deb := debOf(t, control, data, exts[int(ext)%len(exts)])
		var want map[string]string
		paras, perr := collect(t, control)
		if perr == nil && len(paras) > 0 {
			want = map[string]string{}
			for _, fl := range paras[0] {
				want[fl.Name] = fl.Value
			}
		}
		got, err := Control(deb)
		switch {
		case want == nil && err == nil && len(got) > 0:
			t.Fatalf("control %q: fields %q from no paragraph", control, got)
		case want != nil && (err != nil || !reflect.DeepEqual(got, want)):
			t.Fatalf("control %q: %q, %v; want %q", control, got, err, want)
		}
		rc, err := DataTar(deb)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		back, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("data.tar read back as %d bytes (%v), want %d", len(back), err, len(data))
		}
	})
}
