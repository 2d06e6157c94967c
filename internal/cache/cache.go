// Package cache is keel's content-addressed cache: downloads and image
// blobs verified by digest under DIR/blobs/sha256, images and indexes in
// an OCI image layout (DIR/oci) keyed by string, guarded by a file lock
// so that several keel processes can share it.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned for keys the cache does not hold.
var ErrNotFound = errors.New("not in the cache")

// MismatchError reports content that is not what its digest or size
// promised.
type MismatchError struct {
	Want, Got         string // digests
	WantSize, GotSize int64  // WantSize < 0: unknown
}

func (e *MismatchError) Error() string {
	if e.Want != e.Got {
		return fmt.Sprintf("digest mismatch: want %s, got %s", e.Want, e.Got)
	}
	return fmt.Sprintf("size mismatch for %s: want %d bytes, got %d", e.Want, e.WantSize, e.GotSize)
}

// Cache is an open cache directory.
type Cache struct {
	dir    string
	layout layout.Path

	mu       sync.Mutex
	verified map[string]fileID      // blobs hashed by this process, as they were then
	fetching map[string]*sync.Mutex // per digest, so a process downloads once
}

// DefaultDir is KEEL_CACHE, else $XDG_CACHE_HOME/keel, else ~/.cache/keel.
func DefaultDir() string {
	if d := os.Getenv("KEEL_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "keel")
	}
	return filepath.Join(os.TempDir(), "keel-cache")
}

// Open opens the cache in dir, creating its layout if needed.
func Open(dir string) (*Cache, error) {
	c := &Cache{dir: dir, layout: layout.Path(filepath.Join(dir, "oci")), verified: map[string]fileID{}, fetching: map[string]*sync.Mutex{}}
	for _, d := range []string{filepath.Join(dir, "blobs", "sha256"), filepath.Join(dir, "tmp"), string(c.layout)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	unlock, err := c.lock(unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The layout shares the cache's blob directory, so an image's layers
	// and the downloads are one store.
	blobs := filepath.Join(string(c.layout), "blobs")
	if _, err := os.Lstat(blobs); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink(filepath.Join("..", "blobs"), blobs); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(string(c.layout), "index.json")); errors.Is(err, os.ErrNotExist) {
		if _, err := layout.Write(string(c.layout), empty.Index); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	return c, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// lock takes the cache's file lock (unix.LOCK_EX or LOCK_SH). flock locks
// belong to open file descriptions, so goroutines of one process exclude
// each other as two processes do.
func (c *Cache) lock(how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(c.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func parseDigest(digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexd) != 64 {
		return "", fmt.Errorf("bad digest %q: want sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(hexd); err != nil || strings.ToLower(hexd) != hexd {
		return "", fmt.Errorf("bad digest %q: want sha256:<64 hex digits>", digest)
	}
	return hexd, nil
}

// BlobPath is where the blob with digest lives (whether or not it is held).
func (c *Cache) BlobPath(digest string) (string, error) {
	hexd, err := parseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(c.dir, "blobs", "sha256", hexd), nil
}

// Fetch returns the path of verified content with digest ("sha256:…")
// and size (< 0: unknown). Held content is checked (its size every time,
// its SHA-256 once per process); content that is missing or fails the
// check is downloaded through open into DIR/tmp, verified while written,
// and renamed into place, so no reader ever sees a partial or corrupt
// file. A download that does not match gives a *MismatchError.
func (c *Cache) Fetch(ctx context.Context, digest string, size int64, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	p, err := c.BlobPath(digest)
	if err != nil {
		return "", fmt.Errorf("cache fetch: %w", err)
	}
	c.mu.Lock()
	m := c.fetching[digest]
	if m == nil {
		m = &sync.Mutex{}
		c.fetching[digest] = m
	}
	c.mu.Unlock()
	m.Lock()
	defer m.Unlock()

	if ok, err := c.check(p, digest, size); err != nil {
		return "", fmt.Errorf("cache fetch %s: %w", digest, err)
	} else if ok {
		return p, nil
	}
	rc, err := open(ctx)
	if err != nil {
		return "", fmt.Errorf("cache fetch %s: %w", digest, err)
	}
	defer rc.Close()
	if err := c.putBlob(ctx, digest, size, rc); err != nil {
		return "", fmt.Errorf("cache fetch %s: %w", digest, err)
	}
	return p, nil
}

// check reports whether the blob at p is present and good; a bad one is
// removed so it is fetched again.
func (c *Cache) check(p, digest string, size int64) (bool, error) {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if size >= 0 && st.Size() != size || !st.Mode().IsRegular() {
		return false, removeBad(p)
	}
	c.mu.Lock()
	done, ok := c.verified[p]
	c.mu.Unlock()
	if ok && done == idOf(st) {
		return true, nil
	}
	got, err := hashFile(p)
	if err != nil {
		return false, err
	}
	if got != digest {
		return false, removeBad(p)
	}
	c.markVerified(p)
	return true, nil
}

func removeBad(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// putBlob writes r to DIR/tmp, checks it against digest and size (< 0:
// unknown) and renames it into the blob store. An empty digest means
// "whatever r hashes to"; the digest stored is returned either way.
func (c *Cache) putBlob(ctx context.Context, digest string, size int64, r io.Reader) error {
	_, err := c.putBlobDigest(ctx, digest, size, r)
	return err
}

func (c *Cache) putBlobDigest(ctx context.Context, digest string, size int64, r io.Reader) (string, error) {
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "blob-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if digest == "" {
		digest = got
	}
	if got != digest || size >= 0 && n != size {
		return "", &MismatchError{Want: digest, Got: got, WantSize: size, GotSize: n}
	}
	p, err := c.BlobPath(digest)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", err
	}
	c.markVerified(p)
	return digest, nil
}

// ctxReader stops a copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// fileID tells whether a file was replaced or rewritten since it was
// hashed, so a blob is hashed once per process unless it changed.
type fileID struct {
	ino, size int64
	mtime     int64
}

func idOf(st os.FileInfo) fileID {
	id := fileID{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.ino = int64(sys.Ino)
	}
	return id
}

func (c *Cache) markVerified(p string) {
	st, err := os.Stat(p)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.verified[p] = idOf(st)
	c.mu.Unlock()
}
