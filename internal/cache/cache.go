// Package cache is keel's content-addressed cache: downloads and image
// blobs verified by digest under DIR/blobs/sha256, images and indexes in
// an OCI image layout (DIR/oci) keyed by string, guarded by a file lock
// so that several keel processes can share it.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/cachefile"
)

// ErrNotFound is returned for keys the cache does not hold.
var ErrNotFound = errors.New("not in the cache")

// MismatchError reports content that is not what its digest or size
// promised.
type MismatchError = cachefile.MismatchError

// CorruptError reports a held blob whose content no longer matches its
// digest. The cache has removed it, so the entry is a miss now:
// errors.Is(err, ErrNotFound) holds, and a caller fetches or rebuilds it
// as it does anything the cache lacks.
type CorruptError struct {
	Digest string
	Err    error // the *MismatchError
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("blob %s was corrupt (%v) and is removed", e.Digest, e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{e.Err, ErrNotFound} }

// Cache is an open cache directory.
type Cache struct {
	dir    string
	layout layout.Path
	warn   func(msg string)
	files  cachefile.Verifier

	mu       sync.Mutex
	fetching map[string]*sync.Mutex // per digest, so a process downloads once
	repairs  map[string]repair      // digests this process found corrupt
}

// repair is how far the repair of a corrupt blob has come.
type repair int

const (
	removed   repair = iota + 1 // the corrupt file is gone
	rewritten                   // and good content was stored again
)

// Option configures Open.
type Option func(*Cache)

// WithWarnings sends the cache's warnings to warn: each corrupt entry it
// removes (and then fetches or rebuilds) is reported there.
func WithWarnings(warn func(msg string)) Option {
	return func(c *Cache) { c.warn = warn }
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
func Open(dir string, opts ...Option) (*Cache, error) {
	c := &Cache{dir: dir, layout: layout.Path(filepath.Join(dir, "oci")), fetching: map[string]*sync.Mutex{}, repairs: map[string]repair{}}
	for _, o := range opts {
		o(c)
	}
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
	// index.json has no digest to check it by; one that no longer parses
	// is replaced by an empty index, which makes every key a miss: the
	// blobs stay, so what is rebuilt or pulled again finds most of its
	// content held.
	if _, err := c.readIndex(); err != nil {
		c.warnf("cache: %s is damaged (%v): starting a new one; cached images are built or pulled again", filepath.Join(string(c.layout), "index.json"), err)
		if err := c.writeIndexFile(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	return c, nil
}

// FilesDir is where builds keep the file content store (internal/fstree)
// they unpack layers into, beside the blobs it is made from.
func (c *Cache) FilesDir() string { return filepath.Join(c.dir, "files") }

// ModIndexDir is where builds keep each kernel's module index
// (internal/modindex).
func (c *Cache) ModIndexDir() string { return filepath.Join(c.dir, "modindex") }

func (c *Cache) warnf(format string, args ...any) {
	if c.warn != nil {
		c.warn(fmt.Sprintf(format, args...))
	}
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

// BlobPath is where the blob with digest lives (whether or not it is held).
func (c *Cache) BlobPath(digest string) (string, error) {
	hexd, err := cachefile.ParseHex(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(c.dir, "blobs", "sha256", hexd), nil
}

// Fetch returns the path of verified content with digest ("sha256:…")
// and size (< 0: unknown). Held content is hashed whole (once per process,
// see cachefile.Verifier) before its path is returned; content that is
// missing or fails the check (it is removed, with a warning) is downloaded
// through open into DIR/tmp, verified while written, and renamed into
// place, so no reader ever sees a partial or corrupt file. A download that
// does not match gives a *MismatchError.
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

	if ok, err := c.held(p, digest, size); err != nil {
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

// held reports whether the blob at p is present and good. A corrupt one
// is removed, so it is fetched or written again; a blob corrupt a second
// time in this process is an error.
func (c *Cache) held(p, digest string, size int64) (bool, error) {
	f, err := c.files.Open(p, digest, size)
	switch {
	case err == nil:
		return true, f.Close()
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case cachefile.IsMismatch(err):
		if err := c.discard(p, digest, err); !errors.Is(err, ErrNotFound) {
			return false, err
		}
		return false, nil
	default:
		return false, err
	}
}

// discard removes the corrupt blob at p and returns the *CorruptError
// saying so, after a warning: the caller fetches or rebuilds it. When this
// process already replaced it once, the content it fetched or rebuilt went
// bad too, and the error says so instead of asking for a third copy.
func (c *Cache) discard(p, digest string, mismatch error) error {
	c.mu.Lock()
	again := c.repairs[digest] == rewritten
	c.repairs[digest] = removed
	c.mu.Unlock()
	c.files.Forget(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing corrupt blob %s: %w", digest, err)
	}
	if again {
		return fmt.Errorf("blob %s is corrupt again after it was fetched or rebuilt in this run (%w): the disk or file system holding %s may be failing", digest, mismatch, c.dir)
	}
	c.warnf("cache: blob %s is corrupt (%v): removed; fetching or rebuilding it", digest, mismatch)
	return &CorruptError{Digest: digest, Err: mismatch}
}

// putBlob writes r to DIR/tmp, checks it against digest and size (< 0:
// unknown) and renames it into the blob store. An empty digest means
// "whatever r hashes to"; the digest stored is returned either way.
func (c *Cache) putBlob(ctx context.Context, digest string, size int64, r io.Reader) error {
	_, err := c.putBlobDigest(ctx, digest, size, r)
	return err
}

func (c *Cache) putBlobDigest(ctx context.Context, digest string, size int64, r io.Reader) (string, error) {
	tmp, err := cachefile.CreateTemp(filepath.Join(c.dir, "tmp"), "blob-*")
	if err != nil {
		return "", err
	}
	// Closed only after the rename: its lock tells Clean it is in use.
	defer tmp.Close()
	defer os.Remove(tmp.Name()) // no-op once renamed
	got, n, err := cachefile.Sum(io.TeeReader(ctxReader{ctx, r}, tmp))
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
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
	if err := tmp.Chmod(0o444); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.repairs[digest] == removed {
		c.repairs[digest] = rewritten
	}
	c.mu.Unlock()
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
