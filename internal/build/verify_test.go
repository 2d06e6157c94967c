package build

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/fstree"
)

func TestFirstDifference(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := make([]byte, 3<<16+5)
	for i := range big {
		big[i] = byte(i * 7)
	}
	same := write("same", big)
	flipped := append([]byte(nil), big...)
	flipped[2<<16+3] ^= 1
	for _, tc := range []struct {
		name string
		b    []byte
		want int64
	}{
		{"equal", big, -1},
		{"flipped byte", flipped, 2<<16 + 3},
		{"shorter", big[:1<<16], 1 << 16},
		{"longer", append(append([]byte(nil), big...), 0), int64(len(big))},
	} {
		got, err := firstDifference(same, write(tc.name, tc.b))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: first difference at %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestCompareBuildsNamesOutputAndRootEntry(t *testing.T) {
	dir := t.TempDir()
	out := func(sub, name, data string) Output {
		p := filepath.Join(dir, sub, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return Output{Arch: "amd64", Format: "tar", Path: p}
	}
	root := []fstree.Entry{
		{Path: "etc", Mode: fs.ModeDir | 0o755},
		{Path: "etc/hostname", Mode: 0o644, Size: 5, Digest: "sha256:aa"},
		{Path: "init", Mode: 0o755, Size: 9, Digest: "sha256:bb"},
	}
	changed := append([]fstree.Entry(nil), root...)
	changed[1].Mode = 0o600

	a := &Result{Outputs: []Output{out("a", "x-amd64.tar", "same"), out("a", "x-amd64-kernel", "kernel")}, Roots: map[string][]fstree.Entry{"amd64": root}}
	if err := compareBuilds(a, a); err != nil {
		t.Fatalf("a build differs from itself: %v", err)
	}
	b := &Result{Outputs: []Output{out("b", "x-amd64.tar", "sane"), out("b", "x-amd64-kernel", "kernel")}, Roots: map[string][]fstree.Entry{"amd64": changed}}
	err := compareBuilds(a, b)
	var nr *NotReproducibleError
	if !errors.As(err, &nr) {
		t.Fatalf("compareBuilds = %v, want a NotReproducibleError", err)
	}
	if nr.Output != "x-amd64.tar" || nr.Offset != 2 || nr.Entry != "etc/hostname" || !strings.Contains(nr.How, "mode") {
		t.Errorf("got %+v", *nr)
	}
	if msg := err.Error(); !strings.Contains(msg, "/etc/hostname") || !strings.Contains(msg, "byte 2") {
		t.Errorf("message %q does not name the file and the offset", msg)
	}

	// The same roots but different bytes: the writer is to blame.
	b.Roots = a.Roots
	if err := compareBuilds(a, b); err == nil || !strings.Contains(err.Error(), "writer") {
		t.Errorf("compareBuilds with equal roots = %v", err)
	}
	// An output only one build wrote.
	b = &Result{Outputs: a.Outputs[:1], Roots: a.Roots}
	if err := compareBuilds(a, b); !errors.As(err, &nr) || nr.Output != "x-amd64-kernel" || nr.Offset != -1 {
		t.Errorf("compareBuilds with a missing output = %v", err)
	}
}

func TestFirstEntryDifference(t *testing.T) {
	a := []fstree.Entry{{Path: "a", Mode: 0o644, Digest: "sha256:1"}, {Path: "b", Mode: 0o644}}
	for _, tc := range []struct {
		name       string
		b          []fstree.Entry
		entry, how string
	}{
		{"equal", a, "", ""},
		{"missing", a[:1], "b", "only in the first build"},
		{"extra", append(append([]fstree.Entry(nil), a...), fstree.Entry{Path: "c"}), "c", "only in the second build"},
		{"content", []fstree.Entry{{Path: "a", Mode: 0o644, Digest: "sha256:2"}, a[1]}, "a", "content"},
		{"owner", []fstree.Entry{a[0], {Path: "b", Mode: 0o644, UID: 1000}}, "b", "owner"},
	} {
		entry, how := firstEntryDifference(a, tc.b)
		if entry != tc.entry || !strings.HasPrefix(how, tc.how) {
			t.Errorf("%s: got %q %q, want %q %q…", tc.name, entry, how, tc.entry, tc.how)
		}
	}
}
