package epoch

import (
	"testing"
	"time"
)

func TestFromSourceDateEpoch(t *testing.T) {
	for v, want := range map[string]time.Time{
		"":           Default(),
		"1700000000": time.Unix(1700000000, 0).UTC(),
		"0":          time.Unix(0, 0).UTC(),
		"soon":       Default(),
	} {
		if got := FromSourceDateEpoch(v); !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %v, want %v UTC", v, got, want)
		}
	}
}
