package spec

import (
	"fmt"
	"strings"

	"github.com/keelos/keel/internal/format"
)

// ResolveFormat returns the format of the table (internal/format) a
// format name stands for: the name itself for one of the table's, the
// format an accepted alias (format.Aliases, LinuxKit's names) stands
// for. A refused alias or an unknown name is an error saying what to use.
func ResolveFormat(name string) (string, error) {
	if _, ok := format.Lookup(name); ok {
		return name, nil
	}
	a, ok := format.LookupAlias(name)
	switch {
	case !ok:
		names := format.Names()
		for _, a := range format.Aliases() {
			names = append(names, a.Name)
		}
		if s := suggest(name, names); s != "" {
			return "", fmt.Errorf("unknown output format %q; did you mean %q?", name, s)
		}
		return "", fmt.Errorf("unknown output format %q (want one of %s)", name, strings.Join(format.Names(), ", "))
	case a.Format == "":
		return "", fmt.Errorf("output format %q (LinuxKit's) has no keel equivalent: use %s", name, a.Use)
	}
	return a.Format, nil
}
