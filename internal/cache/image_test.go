package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/keelos/keel/internal/cachefile/cachefiletest"
)

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func layerBytes(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func digest(t *testing.T, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestImageRoundTrip(t *testing.T) {
	c := openCache(t, t.TempDir())
	img := randomImage(t)
	if _, err := c.Image("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}
	for range 2 { // storing twice under one key keeps one entry
		if err := c.PutImage("example.com/app:1@linux/amd64", img); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Image("example.com/app:1@linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, got) != digest(t, img) {
		t.Errorf("digest %s, want %s", digest(t, got), digest(t, img))
	}
	wantLayers, _ := img.Layers()
	gotLayers, err := got.Layers()
	if err != nil || len(gotLayers) != len(wantLayers) {
		t.Fatalf("layers: %d, %v", len(gotLayers), err)
	}
	for i := range wantLayers {
		if !bytes.Equal(layerBytes(t, gotLayers[i]), layerBytes(t, wantLayers[i])) {
			t.Errorf("layer %d differs", i)
		}
		rc, err := gotLayers[i].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("layer %d uncompressed: %v", i, err)
		}
		rc.Close()
	}
	if _, err := got.ConfigFile(); err != nil {
		t.Error(err)
	}
	items, err := c.List()
	if err != nil || len(items) != 1 || items[0].Key != "example.com/app:1@linux/amd64" || items[0].Digest != digest(t, img).String() || items[0].Size <= 4096 {
		t.Errorf("list: %+v, %v", items, err)
	}

	// A layer damaged on disk is refused when opened, before any byte of
	// it is read: it is removed, with a warning, and is a miss.
	p, _ := c.BlobPath(digest(t, wantLayers[1]).String())
	cachefiletest.FlipByte(t, p, -1)
	if _, err := gotLayers[1].Compressed(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupted layer opened: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt blob not removed: %v", err)
	}
	// Storing the image again repairs the blob.
	if err := c.PutImage("example.com/app:1@linux/amd64", img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(layerBytes(t, gotLayers[1]), layerBytes(t, wantLayers[1])) {
		t.Error("layer not repaired")
	}
}

// Every blob of an image, wherever the damage, is caught by Image itself
// (so the caller can fetch or rebuild it) and never reaches a reader; a
// blob corrupt again after its repair, in the same process, is an error
// that is not a miss.
func TestImageVerifiesEveryBlobBeforeUse(t *testing.T) {
	dir := t.TempDir()
	img := randomImage(t)
	setup := openCache(t, dir)
	if err := setup.PutImage("k", img); err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	blobs := append([]v1.Descriptor{{Digest: digest(t, img)}, m.Config}, m.Layers...)
	for _, b := range blobs {
		for _, off := range []int64{0, -1} {
			w := &cachefiletest.Warnings{}
			c, err := Open(dir, WithWarnings(w.Add))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := c.BlobPath(b.Digest.String())
			cachefiletest.FlipByte(t, p, off)
			_, err = c.Image("k")
			var ce *CorruptError
			if !errors.Is(err, ErrNotFound) || !errors.As(err, &ce) || ce.Digest != b.Digest.String() {
				t.Fatalf("blob %s flipped at %d: Image gave %v", b.Digest, off, err)
			}
			if !strings.Contains(w.String(), b.Digest.String()) {
				t.Errorf("no warning naming %s: %q", b.Digest, w)
			}
			if err := c.PutImage("k", img); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Image("k"); err != nil {
				t.Fatalf("after repair: %v", err)
			}
			// The repaired blob goes bad again in the same process.
			cachefiletest.FlipByte(t, p, off)
			if _, err := c.Image("k"); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "again") {
				t.Fatalf("second corruption of %s: %v", b.Digest, err)
			}
			if err := c.PutImage("k", img); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestIndexRoundTrip(t *testing.T) {
	c := openCache(t, t.TempDir())
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutIndex("multi", idx); err != nil {
		t.Fatal(err)
	}
	got, err := c.Index("multi")
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, got) != digest(t, idx) {
		t.Error("index digest differs")
	}
	im, _ := got.IndexManifest()
	for _, d := range im.Manifests {
		img, err := got.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if digest(t, img) != d.Digest {
			t.Error("child digest differs")
		}
	}
	if _, err := c.Image("multi"); err == nil {
		t.Error("an index returned as an image")
	}
}

// twoImages stores two random images under "a" and "b".
func twoImages(t *testing.T, c *Cache) (a, b v1.Image) {
	t.Helper()
	a, b = randomImage(t), randomImage(t)
	if err := c.PutImage("a", a); err != nil {
		t.Fatal(err)
	}
	if err := c.PutImage("b", b); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestCleanRemovesUnreferenced(t *testing.T) {
	c := openCache(t, t.TempDir())
	a, b := twoImages(t, c)
	download := []byte("a .deb")
	dp, err := c.Fetch(context.Background(), digestOf(download), -1, func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(download)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if _, err := c.Clean(); err != nil {
		t.Fatal(err)
	}
	exists := func(d string) bool {
		p, _ := c.BlobPath(d)
		_, err := os.Stat(p)
		return err == nil
	}
	bl, _ := b.Layers()
	al, _ := a.Layers()
	if exists(digest(t, bl[0]).String()) || exists(digest(t, b).String()) {
		t.Error("b's blobs survived Clean")
	}
	if _, err := os.Stat(dp); err == nil {
		t.Error("unreferenced download survived Clean")
	}
	if !exists(digest(t, al[0]).String()) {
		t.Error("a's layer was removed")
	}
	got, err := c.Image("a")
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, got) != digest(t, a) {
		t.Error("a changed")
	}
	gl, _ := got.Layers()
	layerBytes(t, gl[1])
}

func TestExportImport(t *testing.T) {
	src := openCache(t, t.TempDir())
	img := randomImage(t)
	if err := src.PutImage("app", img); err != nil {
		t.Fatal(err)
	}
	if err := src.PutImage("other", randomImage(t)); err != nil {
		t.Fatal(err)
	}
	var one, two bytes.Buffer
	if err := src.Export(&one, "app"); err != nil {
		t.Fatal(err)
	}
	if err := src.Export(&two, "app"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("export is not reproducible")
	}
	if err := src.Export(io.Discard, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("export of a missing key: %v", err)
	}
	dst := openCache(t, t.TempDir())
	if err := dst.Import(bytes.NewReader(one.Bytes())); err != nil {
		t.Fatal(err)
	}
	items, err := dst.List()
	if err != nil || len(items) != 1 || items[0].Key != "app" {
		t.Fatalf("imported: %+v %v", items, err)
	}
	got, err := dst.Image("app")
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, got) != digest(t, img) {
		t.Error("imported image differs")
	}
	// A tampered archive is refused.
	bad := bytes.Clone(one.Bytes())
	for j := 3 * 512; j < 4*512; j++ { // inside the first blob's content
		bad[j] ^= 0x55
	}
	if err := openCache(t, t.TempDir()).Import(bytes.NewReader(bad)); err == nil {
		t.Error("tampered import: no error")
	}
}
