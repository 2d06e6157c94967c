package ovmfvars

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/keelos/keel/internal/efivar"
)

// Debian's ovmf package: the empty store keel starts from, and one it
// enrolled its snake-oil test keys in (with OVMF's own EnrollDefaultKeys
// application) to compare against.
const (
	emptyVars    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	snakeoilVars = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (install ovmf: hack/install-deps.sh)", err)
	}
	return b
}

var when = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)

func enrolled(t *testing.T) []byte {
	t.Helper()
	vars := SecureBoot([]byte("PK list"), []byte("KEK list"), []byte("db list"), when)
	out, err := Write(readFile(t, emptyVars), vars)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteReadsBack(t *testing.T) {
	tmpl := readFile(t, emptyVars)
	out := enrolled(t)
	if len(out) != len(tmpl) {
		t.Fatalf("%d bytes, template %d", len(out), len(tmpl))
	}
	if !bytes.Equal(out, enrolled(t)) {
		t.Error("the same keys gave different stores")
	}
	s, _ := parseStore(tmpl)
	// Only the variable area changed.
	if !bytes.Equal(out[:s.start], tmpl[:s.start]) || !bytes.Equal(out[s.end:], tmpl[s.end:]) {
		t.Error("bytes outside the variable area changed")
	}
	got, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	want := SecureBoot([]byte("PK list"), []byte("KEK list"), []byte("db list"), when)
	if len(got) != len(want) {
		t.Fatalf("read back %d variables, wrote %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.GUID != w.GUID || g.Attributes != w.Attributes || !bytes.Equal(g.Data, w.Data) || !g.Time.Equal(w.Time) {
			t.Errorf("variable %d: read %+v, wrote %+v", i, g, w)
		}
	}
}

// TestLikeDebiansEnrolledStore compares the variables keel writes with
// those of Debian's snake-oil store, which OVMF itself enrolled: the same
// names, vendor GUIDs and attributes, and a dbx of the same shape.
func TestLikeDebiansEnrolledStore(t *testing.T) {
	theirs, err := Read(readFile(t, snakeoilVars))
	if err != nil {
		t.Fatal(err)
	}
	find := func(vs []Variable, name string, guid efivar.GUID) *Variable {
		var found *Variable
		for i := range vs {
			if vs[i].Name == name && vs[i].GUID == guid {
				found = &vs[i] // the store's last live copy counts
			}
		}
		return found
	}
	ours, err := Read(enrolled(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ours {
		d := find(theirs, v.Name, v.GUID)
		if d == nil {
			t.Errorf("%s (%s) is not in Debian's store", v.Name, v.GUID)
			continue
		}
		if d.Attributes != v.Attributes {
			t.Errorf("%s: attributes %#x, Debian's %#x", v.Name, v.Attributes, d.Attributes)
		}
		if d.Time.IsZero() != v.Time.IsZero() {
			t.Errorf("%s: timestamp %v, Debian's %v", v.Name, v.Time, d.Time)
		}
		if v.Name == "dbx" || v.Name == "SecureBootEnable" || v.Name == "CustomMode" {
			if !bytes.Equal(d.Data, v.Data) {
				t.Errorf("%s: %x, Debian's %x", v.Name, v.Data, d.Data)
			}
		}
	}
}

func TestWriteKeepsTemplateVariables(t *testing.T) {
	// Debian's snake-oil store has boot entries and its own keys: keel's
	// replace the keys, the rest stays.
	tmpl := readFile(t, snakeoilVars)
	before, _ := Read(tmpl)
	out, err := Write(tmpl, SecureBoot([]byte("PK list"), []byte("KEK list"), []byte("db list"), when))
	if err != nil {
		t.Fatal(err)
	}
	after, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	count := func(vs []Variable, name string) (n int) {
		for _, v := range vs {
			if v.Name == name {
				n++
			}
		}
		return n
	}
	for _, name := range []string{"PK", "KEK", "db"} {
		if count(after, name) != 1 {
			t.Errorf("%d %s variables", count(after, name), name)
		}
	}
	if count(after, "Boot0000") != count(before, "Boot0000") || count(after, "Boot0000") == 0 {
		t.Error("the template's boot entries were lost")
	}
}

func TestRejectsWhatIsNotAStore(t *testing.T) {
	tmpl := readFile(t, emptyVars)
	for name, mutate := range map[string]func([]byte) []byte{
		"truncated":       func(b []byte) []byte { return b[:0x40] },
		"no FV signature": func(b []byte) []byte { b[40] = 'X'; return b },
		"other volume":    func(b []byte) []byte { b[16] ^= 1; return b },
		"length mismatch": func(b []byte) []byte { return b[:len(b)-4096] },
		"not authenticated store": func(b []byte) []byte {
			b[0x48] ^= 1
			return b
		},
		"store size too large": func(b []byte) []byte {
			b[0x48+16], b[0x48+17], b[0x48+18], b[0x48+19] = 0xff, 0xff, 0xff, 0x7f
			return b
		},
	} {
		if _, err := Write(mutate(bytes.Clone(tmpl)), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	full := bytes.Repeat([]byte{1}, 300<<10)
	if _, err := Write(tmpl, []Variable{{Name: "big", GUID: efivar.GlobalVariable, Attributes: 3, Data: full}}); err == nil {
		t.Error("a variable larger than the store was written")
	}
}
