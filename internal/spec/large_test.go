package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unknownKeys is a spec of n unknown top-level keys after a valid kernel.
func unknownKeys(n int) []byte {
	var b strings.Builder
	b.WriteString("name = \"a\"\n")
	for i := range n {
		fmt.Fprintf(&b, "k%d = %d\n", i, i)
	}
	b.WriteString(kernel)
	return []byte(b.String())
}

// A document of many problems is reported whole in Errors, and briefly
// in its text: a file of 128k unknown keys used to take 22 s, as every
// key was compared with every key before it.
func TestManyErrorsAreCountedAndShownBounded(t *testing.T) {
	const n = 130_000
	doc := unknownKeys(n)
	_, err := Parse("big.toml", doc)
	es, ok := err.(Errors)
	if !ok || len(es) != n {
		t.Fatalf("want %d errors, got %T of %d", n, err, len(es))
	}
	lines := strings.Split(es.Error(), "\n")
	if len(lines) != MaxShownErrors+1 {
		t.Fatalf("%d lines, want %d", len(lines), MaxShownErrors+1)
	}
	if want := "big.toml:2:1: k0: unknown key"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if want := fmt.Sprintf("big.toml:%d:1: k%d: unknown key", MaxShownErrors+1, MaxShownErrors-1); lines[MaxShownErrors-1] != want {
		t.Errorf("last problem shown %q, want %q", lines[MaxShownErrors-1], want)
	}
	if want := fmt.Sprintf("and %d more errors", n-MaxShownErrors); lines[MaxShownErrors] != want {
		t.Errorf("last line %q, want %q", lines[MaxShownErrors], want)
	}
}

// Tables nested past the limit are refused before they are decoded, in
// any of the ways TOML nests them.
func TestDeepNestingIsRefused(t *testing.T) {
	deep := strings.Repeat("a.", maxDepth)
	for _, doc := range []string{
		"[" + deep + "b]\n",
		"[[" + deep + "b]]\n",
		deep + "b = 1\n",
		"[[service]]\nname = \"s\"\nimage = \"./s\"\nsysctl = " + strings.Repeat("{a=", maxDepth) + "1" + strings.Repeat("}", maxDepth) + "\n",
		"arch = " + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + "\n",
	} {
		_, err := Parse("deep.toml", []byte(doc))
		es, ok := err.(Errors)
		if !ok || len(es) != 1 || !strings.Contains(es[0].Msg, fmt.Sprintf("nested more than %d levels deep", maxDepth)) {
			t.Errorf("%.40q…: got %v", doc, err)
		}
	}
	// The limit leaves room for every real spec.
	ok := "[service.a.b.c]\nd.e.f = {g = [[1]]}\n"
	if _, err := parseTree("ok.toml", []byte(ok)); err != nil {
		t.Errorf("%q: %v", ok, err)
	}
}

// A file above MaxFileSize is refused before it is parsed, whatever it
// is: a regular file, a device that never ends, a document in memory.
func TestOversizedFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, append([]byte(kernel), make([]byte, MaxFileSize)...), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "larger than 4 MiB: not a spec or package file"
	for _, f := range []string{big, "/dev/zero"} {
		got := errorLines(t, must(Load(f)))
		if len(got) != 1 || got[0] != f+": "+want {
			t.Errorf("Load(%s): %q", f, got)
		}
	}
	if _, err := Parse("mem.toml", make([]byte, MaxFileSize+1)); err == nil || err.Error() != "mem.toml: "+want {
		t.Errorf("Parse: %v", err)
	}
	pkg := filepath.Join(dir, "pkg")
	if err := os.Mkdir(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(pkg, PackageFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPackage(pkg); err == nil || !strings.HasSuffix(err.Error(), ": "+want) {
		t.Errorf("LoadPackage: %v", err)
	}
}

func BenchmarkParseUnknownKeys(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		doc := unknownKeys(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := Parse("bench.toml", doc); err == nil {
					b.Fatal("no errors")
				}
			}
		})
	}
}
