package debian

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/keelos/keel/internal/testenv"
)

// TestOfflineUsesTheKeptInReleaseRealMirror resolves online, keeping the
// verified InRelease, then offline from it alone: same packages. A kept
// InRelease whose signed text was altered is refused, and what the store
// lacks is an ErrOffline naming it.
func TestOfflineUsesTheKeptInReleaseRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	ctx := context.Background()
	mirror := testMirror(t)
	store := sharedStore(t)
	kept := t.TempDir()
	online := NewClient(mirror, store, WithReleaseDir(kept))
	want, err := online.Resolve(ctx, testSuite, "amd64", []string{"busybox-static"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	offline := NewClient(mirror, store, WithReleaseDir(kept), WithOffline(true))
	got, err := offline.Resolve(ctx, testSuite, "amd64", []string{"busybox-static"}, nil)
	if err != nil {
		t.Fatalf("offline resolve from the kept InRelease: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("offline resolved %v, online %v", got, want)
	}

	// The .deb was never fetched: offline, that is an error naming it.
	_, err = offline.Fetch(ctx, got[0])
	if !errors.Is(err, ErrOffline) || !bytes.Contains([]byte(err.Error()), []byte(got[0].Filename)) {
		t.Errorf("offline fetch of an uncached .deb: %v, want ErrOffline naming %s", err, got[0].Filename)
	}

	// Another suite was never kept.
	if _, err := offline.Resolve(ctx, "trixie", "amd64", []string{"busybox-static"}, nil); !errors.Is(err, ErrOffline) {
		t.Errorf("offline resolve of a suite never kept: %v, want ErrOffline", err)
	}

	// Alter one byte of the signed text: the signature check refuses it.
	name := filepath.Join(kept, offline.keptReleaseName(testSuite))
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("Codename: "))
	if i < 0 {
		t.Fatal("no Codename in the kept InRelease")
	}
	data[i] = 'c'
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := NewClient(mirror, store, WithReleaseDir(kept), WithOffline(true))
	if _, err := fresh.Resolve(ctx, testSuite, "amd64", []string{"busybox-static"}, nil); err == nil || errors.Is(err, ErrOffline) {
		t.Errorf("an altered kept InRelease was not refused by its signature: %v", err)
	}
}

// TestUnreachableMirror reports a mirror nothing listens on as
// unreachable, not as a failure of a package.
func TestUnreachableMirror(t *testing.T) {
	c := NewClient("http://127.0.0.1:1/debian", &dirStore{dir: t.TempDir()})
	_, err := c.Resolve(context.Background(), testSuite, "amd64", []string{"busybox-static"}, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Mirror != "http://127.0.0.1:1/debian" {
		t.Fatalf("got %v, want an UnreachableError for the mirror", err)
	}
}
