package hostname

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"keel", "web-1", "ip-10-0-0-1.ec2.internal", "A1", strings.Repeat("a", 63), strings.Repeat("a", 62) + ".b"} {
		if err := Check(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-web", "web-", "a..b", ".a", "a.", "a_b", "host name", "a\nb", strings.Repeat("a", 64), strings.Repeat("a.", 32) + "a"} {
		if err := Check(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
