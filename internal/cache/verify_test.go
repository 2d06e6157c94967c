package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/cachefile/cachefiletest"
)

func TestVerifyReportsAndRepairs(t *testing.T) {
	c := openCache(t, t.TempDir())
	a, b := twoImages(t, c)
	al, _ := a.Layers()
	bl, _ := b.Layers()
	corrupt, _ := c.BlobPath(digest(t, al[0]).String())
	cachefiletest.FlipByte(t, corrupt, 10)
	missing, _ := c.BlobPath(digest(t, bl[1]).String())
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}

	rep, err := c.Verify(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || rep.Blobs < 7 {
		t.Fatalf("report: %+v", rep)
	}
	byPath := map[string]Problem{}
	for _, p := range rep.Problems {
		byPath[p.Path] = p
	}
	if p := byPath[corrupt]; !strings.Contains(p.Err.Error(), "digest mismatch") || !slices.Equal(p.UsedBy, []string{"a"}) || p.Removed {
		t.Errorf("corrupt blob: %+v", p)
	}
	if p := byPath[missing]; !errors.Is(p.Err, errMissing) || !slices.Equal(p.UsedBy, []string{"b"}) {
		t.Errorf("missing blob: %+v", p)
	}
	if _, err := os.Stat(corrupt); err != nil {
		t.Errorf("verify without repair changed the cache: %v", err)
	}

	rep, err = c.Verify(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Forgot, []string{"a", "b"}) {
		t.Errorf("forgot %v", rep.Forgot)
	}
	if _, err := os.Stat(corrupt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt blob survived repair: %v", err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := c.Image(k); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after repair: %v", k, err)
		}
	}
	if rep, err := c.Verify(context.Background(), false); err != nil || len(rep.Problems) != 0 {
		t.Errorf("after repair: %+v, %v", rep, err)
	}
}

func TestCleanRemovesAbandonedTemporaries(t *testing.T) {
	c := openCache(t, t.TempDir())
	// What a keel killed in the middle of a download leaves.
	left := filepath.Join(c.Dir(), "tmp", "blob-123")
	if err := os.WriteFile(left, bytes.Repeat([]byte("x"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	freed, err := c.Clean()
	if err != nil {
		t.Fatal(err)
	}
	if freed.Temps != 1 || freed.TempBytes != 1000 {
		t.Errorf("freed %+v", freed)
	}
	assertNoTmp(t, c)
}

func TestDamagedIndexIsReplaced(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir)
	img := randomImage(t)
	if err := c.PutImage("k", img); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "oci", "index.json")
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(index, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	w := &cachefiletest.Warnings{}
	c, err = Open(dir, WithWarnings(w.Add))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.String(), "index.json is damaged") {
		t.Errorf("warning %q", w)
	}
	if _, err := c.Image("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("key of the damaged index: %v", err)
	}
	if err := c.PutImage("k", img); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Image("k"); err != nil {
		t.Error(err)
	}
}

func TestFetchWarnsAboutCorruptDownload(t *testing.T) {
	dir := t.TempDir()
	content := testContent()
	open := func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil }
	p, err := openCache(t, dir).Fetch(context.Background(), digestOf(content), int64(len(content)), open)
	if err != nil {
		t.Fatal(err)
	}
	cachefiletest.FlipByte(t, p, -1)
	w := &cachefiletest.Warnings{}
	c, err := Open(dir, WithWarnings(w.Add))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(context.Background(), digestOf(content), int64(len(content)), open); err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, content)
	if !strings.Contains(w.String(), digestOf(content)) || !strings.Contains(w.String(), "corrupt") {
		t.Errorf("warning %q", w)
	}
}
