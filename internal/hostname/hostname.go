// Package hostname holds the one rule for a host name keel sets, shared
// by the spec's hostname key and the instance data keel-metadata reads.
package hostname

import (
	"fmt"
	"regexp"
)

// MaxLen is what sethostname(2) accepts.
const MaxLen = 64

// labelsRE is RFC 1123: dot-separated labels of 1 to 63 letters, digits
// and '-', not starting or ending with '-'.
var labelsRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// Check reports whether name is a host name keel may set.
func Check(name string) error {
	if len(name) > MaxLen || !labelsRE.MatchString(name) {
		return fmt.Errorf("%q is not a valid host name (at most %d characters: labels of letters, digits and '-', separated by '.')", name, MaxLen)
	}
	return nil
}
