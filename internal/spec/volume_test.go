package spec

import (
	"slices"
	"strings"
	"testing"
)

func TestResolveVolumeBinds(t *testing.T) {
	vols := []Volume{{Name: "data"}, {Name: "logs"}}
	got, err := ResolveVolumeBinds([]string{"data:/var/lib/app", "/etc/x:/etc/x:ro", "logs:/var/log/app:ro,nosuid"}, vols)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/var/lib/keel/volumes/data:/var/lib/app", "/etc/x:/etc/x:ro", "/var/lib/keel/volumes/logs:/var/log/app:ro,nosuid"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ResolveVolumeBinds([]string{"cache:/c"}, vols); err == nil || !strings.Contains(err.Error(), `no [[volume]] is named "cache"`) {
		t.Errorf("unknown volume: %v", err)
	}
}
