package format

import "testing"

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
