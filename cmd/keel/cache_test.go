package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/cachefile"
	"github.com/keelos/keel/internal/cachefile/cachefiletest"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/testenv"
)

// countingReader counts the bytes read through it; as an io.ByteReader it
// keeps the decompressor from reading ahead of what it needs.
type countingReader struct {
	r *bytes.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// pastTarEnd returns how many bytes of a gzipped tar a reader has
// consumed when the tar reader meets the end marker: the bytes after it
// (the rest of the last deflate block and the gzip trailer) are never
// needed to read the archive, so only a hash of the whole blob sees them.
func pastTarEnd(t *testing.T, blob []byte) int64 {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(blob)}
	zr, err := gzip.NewReader(cr)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return cr.n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// flipPositions spreads 20 positions over a gzipped layer of size bytes:
// the gzip header, evenly through the deflate data, a point past the tar
// end marker, the CRC and length of the gzip trailer and the very last
// byte.
func flipPositions(t *testing.T, blob []byte) []int64 {
	size := int64(len(blob))
	end := pastTarEnd(t, blob)
	fixed := []int64{0, 4, size - 8, size - 5, size - 4, size - 1}
	if end < size-8 {
		fixed = append(fixed, end+(size-8-end)/2)
		t.Logf("tar end marker read after %d of %d bytes: flipping byte %d past it", end, size, fixed[len(fixed)-1])
	} else {
		t.Logf("tar end marker read after %d of %d bytes: only the gzip trailer lies past it", end, size)
	}
	pos := slices.Clone(fixed)
	for i := int64(1); len(pos) < 20; i++ {
		pos = append(pos, i*size/int64(21-len(fixed)))
	}
	slices.Sort(pos)
	return slices.Compact(pos)
}

// buildOutputs runs keel build and returns every file it wrote.
func buildOutputs(t *testing.T, args ...string) (files map[string][]byte, stderr string) {
	t.Helper()
	dir := t.TempDir()
	code, _, stderr := keel(t, append(args, "--dir", dir)...)
	if code != 0 {
		t.Fatalf("keel %v: exit %d\n%s", args, code, stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files, stderr
}

func sameOutputs(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d outputs, want %d", what, len(got), len(want))
	}
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			t.Errorf("%s: %s differs from the clean build's", what, name)
		}
	}
}

// The finding this answers: one flipped byte in the cached kernel layer
// gave another kernel with exit 0. Flipped anywhere (gzip header, deflate
// data, past the tar end marker, gzip trailer, last byte), the layer is
// caught before use, rebuilt from the .deb, and the build writes the clean
// build's bytes. A corrupt content-store file is repaired the same way.
func TestCorruptCacheIsRepairedByTheNextBuildRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	cacheDir := t.TempDir()
	spec, err := filepath.Abs("../../examples/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--cache", cacheDir, "build", "--format", "kernel+initrd", spec}
	clean, _ := buildOutputs(t, args...)

	c, err := cache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	items, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(items, func(it cache.Item) bool { return strings.HasPrefix(it.Key, "kernel-debian-cloud:") })
	if i < 0 {
		t.Fatalf("no kernel package in the cache: %+v", items)
	}
	img, err := c.Image(items[i].Key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layer := slices.MaxFunc(m.Layers, func(a, b v1.Descriptor) int { return int(a.Size - b.Size) })
	p, err := c.BlobPath(layer.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	positions := flipPositions(t, orig)
	if len(positions) != 20 {
		t.Fatalf("%d positions", len(positions))
	}
	for _, pos := range positions {
		cachefiletest.FlipByte(t, p, pos)
		got, stderr := buildOutputs(t, args...)
		what := fmt.Sprintf("byte %d of %s", pos, layer.Digest)
		if !strings.Contains(stderr, "warning: cache: blob "+layer.Digest.String()+" is corrupt") {
			t.Errorf("%s: no warning:\n%s", what, stderr)
		}
		if strings.Contains(stderr, "kernel-debian-cloud (amd64): cached") {
			t.Errorf("%s: the kernel package was not rebuilt:\n%s", what, stderr)
		}
		sameOutputs(t, what, got, clean)
		if now, err := os.ReadFile(p); err != nil || !bytes.Equal(now, orig) {
			t.Errorf("%s: the layer was not restored (%v)", what, err)
		}
	}

	// The kernel's file in the content store, corrupt, is found and
	// replaced by the next build as it unpacks the kernel layer.
	store, err := fstree.NewStore(c.FilesDir())
	if err != nil {
		t.Fatal(err)
	}
	var kernelName string
	for name := range clean {
		if strings.HasSuffix(name, "-kernel") {
			kernelName = name
		}
	}
	sum, _, err := cachefile.Sum(bytes.NewReader(clean[kernelName]))
	if err != nil {
		t.Fatal(err)
	}
	cachefiletest.FlipByte(t, store.Path(sum), int64(len(clean[kernelName])/2))
	got, stderr := buildOutputs(t, args...)
	if !strings.Contains(stderr, "warning: content store: "+store.Path(sum)+" was corrupt") {
		t.Errorf("corrupt content-store file: no warning:\n%s", stderr)
	}
	sameOutputs(t, "content store", got, clean)
	if now, err := os.ReadFile(store.Path(sum)); err != nil || !bytes.Equal(now, clean[kernelName]) {
		t.Errorf("content-store file not repaired (%v)", err)
	}
}

// A small cache with one image and one content-store file, no network.
func smallCache(t *testing.T) (c *cache.Cache, layer string, stored string) {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutImage("app", img); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	if layer, err = c.BlobPath(d.String()); err != nil {
		t.Fatal(err)
	}
	store, err := fstree.NewStore(c.FilesDir())
	if err != nil {
		t.Fatal(err)
	}
	sum, _, err := store.Put(strings.NewReader("a file of a layer"))
	if err != nil {
		t.Fatal(err)
	}
	return c, layer, store.Path(sum)
}

func TestCacheVerifyReportsCorruptEntries(t *testing.T) {
	c, layer, stored := smallCache(t)
	code, stdout, stderr := keel(t, "--cache", c.Dir(), "cache", "verify")
	if code != 0 || !strings.Contains(stdout, "0 bad") {
		t.Fatalf("clean cache: exit %d\n%s%s", code, stdout, stderr)
	}
	cachefiletest.FlipByte(t, layer, 100)
	cachefiletest.FlipByte(t, stored, 0)
	code, stdout, stderr = keel(t, "--cache", c.Dir(), "cache", "verify")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"bad: " + layer + ": digest mismatch", "(needed by app)", "bad: " + stored + ": digest mismatch", "2 bad"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "keel cache verify --repair") {
		t.Errorf("stderr names no fix: %s", stderr)
	}
	code, stdout, stderr = keel(t, "--cache", c.Dir(), "cache", "verify", "--repair")
	if code != 0 || !strings.Contains(stdout, "removed: "+layer) || !strings.Contains(stdout, "removed: "+stored) || !strings.Contains(stdout, "forgot: app") {
		t.Errorf("--repair: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, p := range []string{layer, stored} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived --repair: %v", p, err)
		}
	}
	if code, stdout, _ := keel(t, "--cache", c.Dir(), "cache", "verify"); code != 0 || !strings.Contains(stdout, "0 bad") {
		t.Errorf("after --repair: exit %d\n%s", code, stdout)
	}
}

func TestCacheCleanRemovesTemporaries(t *testing.T) {
	c, _, stored := smallCache(t)
	// What a keel killed while it stored a file or downloaded a blob
	// leaves behind.
	put := filepath.Join(filepath.Dir(stored), ".put-123456")
	blob := filepath.Join(c.Dir(), "tmp", "blob-123456")
	index := filepath.Join(c.ModIndexDir(), ".put-123456")
	if err := os.MkdirAll(c.ModIndexDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{put, blob, index} {
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 2048), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := keel(t, "--cache", c.Dir(), "cache", "clean")
	if code != 0 || !strings.Contains(stdout, "freed 0 blobs (0 B) and 3 temporary files (6.0 KiB)") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, p := range []string{put, blob, index} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived: %v", p, err)
		}
	}
	if _, err := os.Stat(stored); err != nil {
		t.Errorf("clean removed a content-store file: %v", err)
	}
}
