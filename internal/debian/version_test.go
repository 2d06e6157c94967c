package debian

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0-1", "1.0-2", -1},
		{"1:0.1", "2.0", 1},    // epoch wins
		{"0:1.0", "1.0", 0},    // epoch 0 is the default
		{"1.0~rc1", "1.0", -1}, // tilde sorts before the end
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0~", "1.0", -1},
		{"1.0a", "1.0", 1},   // a letter sorts after the end
		{"1.0a", "1.0+", -1}, // letters before other characters
		{"1.0+b1", "1.0", 1},
		{"1.0.0", "1.0", 1},
		{"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
		{"1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", 1},
		{"1.35.0-4+b3", "1.35.0-4", 1},
		{"00010", "9", 1},                                    // leading zeros ignore
		{"1.0-1-2", "1.0-1-1", 1},                            // the last hyphen splits the revision
		{"12345678901234567890", "12345678901234567891", -1}, // beyond int64
		{"a", "b", -1},
		{"1.0", "1.0-0", 0},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestRelationSatisfied(t *testing.T) {
	tests := []struct {
		rel    Relation
		v, ref string
		want   bool
	}{
		{">=", "2.36-9", "2.34", true},
		{">=", "2.34", "2.36", false},
		{"<<", "1.0~rc1", "1.0", true},
		{"<<", "1.0", "1.0", false},
		{"<=", "1.0", "1.0", true},
		{"=", "1:1.0", "1.0", false},
		{">>", "1.0+b1", "1.0", true},
		{"", "anything", "", true},
	}
	for _, tt := range tests {
		if got := tt.rel.Satisfied(tt.v, tt.ref); got != tt.want {
			t.Errorf("%q %s %q = %v, want %v", tt.v, tt.rel, tt.ref, got, tt.want)
		}
	}
}
