package qemu

import "testing"

func TestUnescape(t *testing.T) {
	escaped := false
	for _, tc := range []struct {
		in, out  string
		quit     bool
		escAfter bool
	}{
		{"ls\n", "ls\n", false, false},
		{"a\x01\x01b", "a\x01b", false, false},
		{"a\x01", "a", false, true}, // escape split across reads
		{"x rest", "", true, false},
		{"\x01hq", "q", false, false}, // unknown escape: dropped, as QEMU does
		{"ok\x01X", "ok", true, false},
	} {
		out, quit := unescape([]byte(tc.in), &escaped)
		if string(out) != tc.out || quit != tc.quit || escaped != tc.escAfter {
			t.Errorf("unescape(%q) = %q quit=%v escaped=%v, want %q %v %v", tc.in, out, quit, escaped, tc.out, tc.quit, tc.escAfter)
		}
	}
}
