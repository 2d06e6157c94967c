package format

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAliasesAreConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range Aliases() {
		if seen[a.Name] {
			t.Errorf("%s: listed twice", a.Name)
		}
		seen[a.Name] = true
		if _, ok := Lookup(a.Name); ok {
			t.Errorf("%s: is a keel format, not an alias", a.Name)
		}
		if (a.Format == "") == (a.Use == "") {
			t.Errorf("%s: want exactly one of Format and Use: %+v", a.Name, a)
		}
		if _, ok := Lookup(a.Format); a.Format != "" && !ok {
			t.Errorf("%s: alias of %q, which is no keel format", a.Name, a.Format)
		}
	}
}

// TestDocsListTheTable checks the docs against the table: spec.md's
// [output] formats row names every format in the table's order, and
// README.md's and internals.md's format tables have a row for each, with
// its file names.
func TestDocsListTheTable(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var quoted []string
	for _, name := range Names() {
		quoted = append(quoted, "`"+name+"`")
	}
	if list := strings.Join(quoted, ", "); !strings.Contains(read("docs/spec.md"), "| `formats` | array of strings | `[\"kernel+initrd\"]` | "+list+";") {
		t.Errorf("docs/spec.md: the formats row does not list %s", list)
	}
	readme, internals := read("README.md"), read("docs/internals.md")
	for _, f := range All() {
		i := strings.Index(readme, "\n| `"+f.Name+"` | `NAME-")
		if i < 0 {
			t.Errorf("README.md: no row for %s", f.Name)
			continue
		}
		row, _, _ := strings.Cut(readme[i+1:], "\n")
		for _, s := range f.Suffixes {
			if !strings.Contains(row, s+"`") {
				t.Errorf("README.md: %s's file NAME-ARCH%s is not named", f.Name, s)
			}
		}
		var files []string
		for _, s := range f.Suffixes {
			files = append(files, "`"+s+"`")
		}
		arch := "all"
		if f.Arch != "" {
			arch = f.Arch
		}
		if row := "| `" + f.Name + "` | " + strings.Join(files, ", ") + " | " + arch + " | "; !strings.Contains(internals, row) {
			t.Errorf("docs/internals.md: no row %q", row)
		}
	}
}
