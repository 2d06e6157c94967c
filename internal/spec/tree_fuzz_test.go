package spec

import (
	"errors"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// defineOnce are documents on TOML's rule that a key is defined once,
// which parseTree enforces itself: go-toml's decoder decides which are
// valid.
var defineOnce = []string{
	"a = 1\na = 2\n",
	"a = 1\n[a]\n",
	"a = 1\n[a.b]\n",
	"a = 1\n[[a]]\n",
	"a = {}\n[a]\n",
	"a = {}\na.b = 1\n",
	"a = {b = 1}\n[a.c]\n",
	"a = [{}]\n[[a]]\n",
	"a = []\n[a.b]\n",
	"[a]\n[a]\n",
	"[a]\n[[a]]\n",
	"[[a]]\n[a]\n",
	"[[a]]\n[[a]]\n",
	"[[a]]\nb = 1\n[[a]]\nb = 2\n",
	"[[a]]\n[a.b]\n[[a]]\n[a.b]\n",
	"[[a]]\n[a.b]\n[a.b]\n",
	"[[a.b]]\n[a]\n",
	"[[a.b]]\n[a]\n[a]\n",
	"[a.b]\n[a]\n",
	"[a.b]\n[a]\nb.c = 1\n",
	"[a.b.c]\n[a]\n[a.b]\n",
	"a.b = 1\na.c = 2\n",
	"a.b = 1\na.b.c = 2\n",
	"a.b = 1\n[a]\n",
	"a.b.c = 1\n[a.b]\n",
	"a.b.c = 1\n[a.b.d]\n",
	"[fruit]\napple.color = 'red'\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n",
	"[fruit]\napple.color = 'red'\n[fruit.apple]\n",
	"[fruit]\napple.color = 'red'\n[fruit.apple.taste]\n",
	"a = {b.c = 1, b.d = 2}\n",
	"a = {b = 1, b = 2}\n",
	"a = {b.c = 1, b = {}}\n",
	"a = [{b = 1, b = 2}]\n",
	"a = [[{b = 1}, {b = 2}]]\n",
	"a = [{b = {c = 1}}, {b = {c = 1}}]\n",
	"[a]\nb = 1\n[a.b]\n",
	"[a]\nb.c = 1\n[a.b]\n",
	"[a]\nb.c = 1\n[a.b.d]\n",
	"[a.b]\nc = 1\n[a]\nb.d = 2\n",
	"\"a.b\" = 1\na.b = 2\n",
	"'a' = 1\n\"a\" = 2\n",
	"a.'b' = 1\na.\"b\" = 2\n",
	"[a]\n['a'.b]\n[\"a\"]\n",
	"x = 99999999999999999999\n",
	"x = 1979-05-27\n",
	"x = 1979-13-45\n",
	"x = 1e400\n",
	"x = nan\n",
	"x = \"\\uD800\"\n",
	"x = 'a\nb'\n",
	"[a\n",
	"a = [1,,2]\n",
}

// agree fails when parseTree and go-toml disagree on doc: go-toml's
// accepted documents are parsed, and its rejected ones are rejected at
// the same place.
func agree(t *testing.T, doc []byte) {
	t.Helper()
	var m map[string]any
	gerr := toml.Unmarshal(doc, &m)
	_, err := parseTree("f.toml", doc)
	switch {
	case gerr == nil && err != nil:
		t.Fatalf("%q: go-toml accepts it, parseTree: %v", doc, err)
	case gerr != nil && err == nil:
		t.Fatalf("%q: go-toml rejects it (%v), parseTree accepts it", doc, gerr)
	case gerr != nil && err != nil:
		var de *toml.DecodeError
		if errors.As(gerr, &de) {
			line, col := de.Position()
			if err.Line != line || err.Col != col {
				t.Fatalf("%q: parseTree: %v; go-toml at %d:%d: %v", doc, err, line, col, gerr)
			}
		}
	}
	if err == nil {
		// Decoding any accepted tree must not panic, whatever it holds.
		_, _ = Parse("f.toml", doc)
	}
}

func TestTreeDefinesKeysOnceAsGoTOMLDoes(t *testing.T) {
	for _, doc := range defineOnce {
		agree(t, []byte(doc))
	}
}

// FuzzParseTree checks that keel's tree builder accepts the TOML
// documents go-toml accepts and rejects the others, at the same position.
func FuzzParseTree(f *testing.F) {
	for _, doc := range defineOnce {
		f.Add([]byte(doc))
	}
	f.Add([]byte(full))
	f.Add([]byte(fullPackage))
	f.Fuzz(func(t *testing.T, doc []byte) {
		agree(t, doc)
	})
}
