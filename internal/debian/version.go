package debian

import "strings"

// CompareVersions compares two Debian version strings
// ([epoch:]upstream[-revision]) as dpkg does: it returns -1, 0 or +1 when
// a sorts before, equal to or after b. "~" sorts before anything, even the
// end of the string; letters sort before other characters.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if c := compareNumeric(ea, eb); c != 0 {
		return c
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

func splitVersion(v string) (epoch, upstream, revision string) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v, revision = v[:i], v[i+1:]
	}
	return epoch, v, revision
}

// compareFragment is dpkg's verrevcmp: alternating non-digit and digit runs.
func compareFragment(a, b string) int {
	for a != "" || b != "" {
		// Non-digit prefix, compared character by character by order().
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			var ca, cb int
			if a != "" && !isDigit(a[0]) {
				ca = order(a[0])
			}
			if b != "" && !isDigit(b[0]) {
				cb = order(b[0])
			}
			if ca != cb {
				if ca < cb {
					return -1
				}
				return 1
			}
			if a != "" && !isDigit(a[0]) {
				a = a[1:]
			}
			if b != "" && !isDigit(b[0]) {
				b = b[1:]
			}
		}
		var na, nb string
		na, a = digitRun(a)
		nb, b = digitRun(b)
		if c := compareNumeric(na, nb); c != 0 {
			return c
		}
	}
	return 0
}

// order weighs a non-digit: "~" lowest, then the end of the run (0), then
// letters, then everything else.
func order(c byte) int {
	switch {
	case c == '~':
		return -1
	case isDigit(c):
		return 0
	case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return int(c)
	default:
		return int(c) + 256
	}
}

func digitRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// compareNumeric compares runs of decimal digits of any length.
func compareNumeric(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Relation is a version relation of a dependency: "<<", "<=", "=", ">=",
// ">>" (and the obsolete "<" and ">", meaning "<=" and ">=").
type Relation string

// Satisfied reports whether version v satisfies "rel ref". An empty
// relation accepts any version.
func (rel Relation) Satisfied(v, ref string) bool {
	if rel == "" {
		return true
	}
	c := CompareVersions(v, ref)
	switch rel {
	case "<<":
		return c < 0
	case "<=", "<":
		return c <= 0
	case "=":
		return c == 0
	case ">=", ">":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}
