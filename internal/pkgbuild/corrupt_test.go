package pkgbuild

import (
	"context"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/cachefile/cachefiletest"
)

// A package's cached layer, damaged, is a miss: the package is built
// again under the same input hash, to the same digest, with a warning.
func TestCorruptCachedLayerIsRebuilt(t *testing.T) {
	ctx := context.Background()
	dir := tinyModule(t)
	cacheDir := t.TempDir()
	c, err := cache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := (&Builder{Cache: c}).BuildResult(ctx, dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := r1.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layer := m.Layers[len(m.Layers)-1].Digest.String()
	p, err := c.BlobPath(layer)
	if err != nil {
		t.Fatal(err)
	}
	cachefiletest.FlipByte(t, p, 0)

	w := &cachefiletest.Warnings{}
	c2, err := cache.Open(cacheDir, cache.WithWarnings(w.Add))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	r2, err := (&Builder{Cache: c2, Progress: rec.add}).BuildResult(ctx, dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if r2.CacheHit || r2.Key != r1.Key || !rec.has("go build") {
		t.Errorf("not rebuilt: hit=%v key %s (was %s), progress %v", r2.CacheHit, r2.Key, r1.Key, rec.msgs)
	}
	if !strings.Contains(w.String(), "blob "+layer+" is corrupt") {
		t.Errorf("warning %q", w)
	}
	d1, _ := r1.Image.Digest()
	d2, _ := r2.Image.Digest()
	if d1 != d2 {
		t.Errorf("rebuilt digest %s, want %s", d2, d1)
	}
	if _, err := c2.Image(r2.Key); err != nil {
		t.Errorf("the rebuilt image does not verify: %v", err)
	}
}
