package source

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/cachefile/cachefiletest"
	"github.com/keelos/keel/internal/spec"
)

// A pulled layer damaged in the cache is caught before use, removed with
// a warning and pulled again; the image is the same as before.
func TestRegistryLayerCorruptInTheCacheIsPulledAgain(t *testing.T) {
	ctx := context.Background()
	var blobGets atomic.Int32
	reg := newRegistry()
	host, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobGets.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	img := platformImage(t, "amd64")
	tag, err := name.NewTag(host + "/keel/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := &Resolver{Cache: openCache(t, dir, nil)}
	if _, err := first.Image(ctx, spec.ImageRef{Ref: tag.String()}, "amd64"); err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layer := m.Layers[1].Digest.String()
	p, err := first.Cache.BlobPath(layer)
	if err != nil {
		t.Fatal(err)
	}
	cachefiletest.FlipByte(t, p, -1) // the gzip trailer: no reader of the tar would notice

	before := blobGets.Load()
	w := &cachefiletest.Warnings{}
	next := &Resolver{Cache: openCache(t, dir, w)}
	got, err := next.Image(ctx, spec.ImageRef{Ref: tag.String()}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.String(), "blob "+layer+" is corrupt") {
		t.Errorf("warning %q", w)
	}
	if blobGets.Load() == before {
		t.Error("the corrupt layer was not fetched again")
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Errorf("digest %s, want %s", digestOf(t, got), digestOf(t, img))
	}
	// Image verified every blob; the repaired layer reads back whole.
	if err := readAllLayers(got); err != nil {
		t.Fatal(err)
	}
}

func openCache(t *testing.T, dir string, w *cachefiletest.Warnings) *cache.Cache {
	t.Helper()
	var opts []cache.Option
	if w != nil {
		opts = append(opts, cache.WithWarnings(w.Add))
	}
	c, err := cache.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
