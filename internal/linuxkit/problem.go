package linuxkit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity says what a problem does to a conversion.
type Severity int

const (
	// Warning: translated, with a difference the user should know of.
	Warning Severity = iota
	// Unsupported: LinuxKit accepts it, keel has no equivalent; it is
	// left out of the spec.
	Unsupported
	// Invalid: LinuxKit itself would refuse it; no spec is made.
	Invalid
)

// A Problem is one thing a conversion could not carry over as it was
// written, located in the YAML file that wrote it.
type Problem struct {
	File     string // as named in the Input; "" for a problem of the options
	Line     int    // 1-based; 0 when it has no single place
	Col      int
	Path     string // the LinuxKit key path: services[sshd].binds[0]
	Msg      string
	Severity Severity
}

// String is FILE:LINE:COL: PATH: MESSAGE, as keel reports spec errors,
// the message prefixed with "warning: " or "not supported: ".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	switch p.Severity {
	case Warning:
		b.WriteString("warning: ")
	case Unsupported:
		b.WriteString("not supported: ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// sortProblems orders problems by input file, then position, then as they
// were found.
func sortProblems(ps []Problem, files []string) {
	rank := func(f string) int {
		if i := slices.Index(files, f); i >= 0 {
			return i
		}
		return -1 // problems of the options first
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(rank(a.File), rank(b.File)), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}
