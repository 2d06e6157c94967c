package build

import "testing"

func TestGrubQuoteKeepsEachKernelArgument(t *testing.T) {
	for in, want := range map[string]string{
		"console=ttyS0 panic=-1":           "'console=ttyS0' 'panic=-1'",
		`  a  dyndbg="file x.c +p" $root `: `'a' 'dyndbg="file x.c +p"' '$root'`,
		"it's":                             `'it'\''s'`,
		"":                                 "",
	} {
		if got := grubQuote(in); got != want {
			t.Errorf("grubQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
