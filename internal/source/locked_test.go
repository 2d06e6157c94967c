package source

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/spec"
)

// TestLockedTakesTheLockedDigestAndOfflineOnlyTheCache pushes two images
// under one tag in turn: a locked resolver pulls the one build.lock
// records (by digest), whatever the tag now names, and serves it from the
// cache once the registry is gone; an offline resolver names what the
// cache lacks; a reference the lock does not record is refused.
func TestLockedTakesTheLockedDigestAndOfflineOnlyTheCache(t *testing.T) {
	ctx := context.Background()
	host, stop := serve(t, newRegistry())
	tag, err := name.NewTag(host + "/keel/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	first := platformImage(t, "amd64")
	if err := remote.Write(tag, first); err != nil {
		t.Fatal(err)
	}
	locked := &lock.File{Images: []lock.Image{{Ref: tag.String(), Arch: "amd64", Digest: digestOf(t, first).String()}}}
	_, imgs := twoPlatformIndex(t)
	if digestOf(t, imgs["amd64"]) == digestOf(t, first) {
		t.Fatal("the two images are the same")
	}
	if err := remote.Write(tag, imgs["amd64"]); err != nil { // the tag moves on
		t.Fatal(err)
	}

	r := newResolver(t)
	r.Locked = locked
	img, err := r.Image(ctx, spec.ImageRef{Ref: tag.String()}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digestOf(t, img), digestOf(t, first); got != want {
		t.Fatalf("locked resolver gave %s, want the locked %s", got, want)
	}
	stop()
	r.Offline = true
	if _, err := r.Image(ctx, spec.ImageRef{Ref: tag.String()}, "amd64"); err != nil {
		t.Fatalf("locked and offline, from the cache: %v", err)
	}
	if _, err := r.Image(ctx, spec.ImageRef{Ref: host + "/keel/other:v1"}, "amd64"); err == nil || !strings.Contains(err.Error(), "not in build.lock") {
		t.Errorf("a reference the lock does not record: %v", err)
	}

	empty := newResolver(t)
	empty.Offline = true
	_, err = empty.Image(ctx, spec.ImageRef{Ref: tag.String()}, "amd64")
	if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), tag.String()) {
		t.Errorf("offline with an empty cache: %v, want ErrOffline naming %s", err, tag)
	}
}
