// Package debian is a pure-Go client of a Debian archive: it verifies the
// archive's InRelease against the Debian archive keyring, reads the
// Packages indexes it vouches for, resolves dependencies for one
// architecture, downloads .deb files by SHA-256 and reads their data.tar
// without dpkg.
//
// Every download goes through a Store, keyed by the SHA-256 that the
// signed InRelease (for indexes) or the index (for .deb files) gives, so
// nothing unverified is ever used and a warm cache needs only InRelease
// from the network.
package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// Store holds verified content by digest. Fetch returns the local path of
// the content whose digest is digest ("sha256:<hex>") and size is size,
// calling open to download it only when the store does not hold it yet,
// and refusing content whose digest or size differ.
type Store interface {
	Fetch(ctx context.Context, digest string, size int64, open func(context.Context) (io.ReadCloser, error)) (path string, err error)
}

// Package is one binary package of an index.
type Package struct {
	Name    string
	Version string
	Arch    string // the target architecture, or "all"
	// Source and SourceVersion name the source package (for SBOMs); they
	// equal Name and Version when the index gives no Source.
	Source        string
	SourceVersion string
	Filename      string // path of the .deb relative to the mirror
	SHA256        string // hex
	Size          int64
	Depends       string
	PreDepends    string
	Provides      string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client used for every download.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithProgress sets a callback told about downloads: name is what is
// being downloaded, done and total are bytes (total -1 when unknown).
func WithProgress(fn func(name string, done, total int64)) Option {
	return func(c *Client) { c.progress = fn }
}

// WithKeyring replaces the embedded Debian archive keyring, for archives
// signed by other keys.
func WithKeyring(k openpgp.KeyRing) Option { return func(c *Client) { c.keyring = k } }

// WithComponents sets the archive components whose indexes are read
// (default: "main").
func WithComponents(components ...string) Option {
	return func(c *Client) { c.components = components }
}

// WithOffline makes the client download nothing: each suite's InRelease
// is the last one verified and kept (WithReleaseDir), and what the store
// does not hold is an error wrapping ErrOffline that names it.
func WithOffline(offline bool) Option { return func(c *Client) { c.offline = offline } }

// WithReleaseDir keeps the last verified InRelease of each suite in dir,
// for offline use. Read back, it is verified against the keyring again.
func WithReleaseDir(dir string) Option { return func(c *Client) { c.releaseDir = dir } }

// ErrOffline is wrapped by the errors of an offline client (WithOffline)
// asked for something it does not hold.
var ErrOffline = errors.New("offline")

// UnreachableError reports a mirror that could not be reached at all (as
// opposed to one that answered with an error).
type UnreachableError struct {
	Mirror string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("Debian mirror %s is unreachable: %v", e.Mirror, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client reads one Debian mirror. It remembers each suite's InRelease and
// each parsed index for its lifetime (one build), so resolving several
// package sets or architectures reads each only once. It is safe for
// concurrent use.
type Client struct {
	mirror     string
	store      Store
	http       *http.Client
	progress   func(name string, done, total int64)
	keyring    openpgp.KeyRing
	components []string
	offline    bool
	releaseDir string

	mu       sync.Mutex
	releases map[string]*onceValue[*release] // by suite
	indexes  map[string]*onceValue[*index]   // by suite and architecture
}

// onceValue computes a value once, for every concurrent caller.
type onceValue[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (o *onceValue[T]) get(fn func() (T, error)) (T, error) {
	o.once.Do(func() { o.v, o.err = fn() })
	return o.v, o.err
}

// NewClient returns a client of the Debian archive at mirror (for example
// the result of MirrorFromHost) that keeps its downloads in store.
func NewClient(mirror string, store Store, opts ...Option) *Client {
	c := &Client{
		mirror:     strings.TrimRight(mirror, "/"),
		store:      store,
		http:       http.DefaultClient,
		components: []string{"main"},
		releases:   map[string]*onceValue[*release]{},
		indexes:    map[string]*onceValue[*index]{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Mirror returns the archive URL the client reads.
func (c *Client) Mirror() string { return c.mirror }

// Fetch downloads p's .deb into the store (or finds it there) and returns
// its local path, after checking its SHA-256 and size against the index.
func (c *Client) Fetch(ctx context.Context, p Package) (string, error) {
	if p.SHA256 == "" || p.Filename == "" {
		return "", fmt.Errorf("package %s %s: no file or SHA-256 in the index", p.Name, p.Version)
	}
	name := p.Filename[strings.LastIndexByte(p.Filename, '/')+1:]
	path, err := c.store.Fetch(ctx, "sha256:"+p.SHA256, p.Size, func(ctx context.Context) (io.ReadCloser, error) {
		return c.get(ctx, c.mirror+"/"+p.Filename, name)
	})
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", name, err)
	}
	// The store promises verified content; checking again costs little
	// for a .deb and means a corrupt cache can never reach an image.
	if err := verifyFile(path, p.SHA256, p.Size); err != nil {
		return "", fmt.Errorf("fetching %s: %w", name, err)
	}
	return path, nil
}

// get opens url for reading, reporting progress under name.
func (c *Client) get(ctx context.Context, url, name string) (io.ReadCloser, error) {
	if c.offline {
		return nil, fmt.Errorf("%w: %s is not in the cache", ErrOffline, url)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &httpError{url: url, status: resp.Status, code: resp.StatusCode}
	}
	if c.progress == nil {
		return resp.Body, nil
	}
	return &progressReader{rc: resp.Body, name: name, total: resp.ContentLength, fn: c.progress}, nil
}

type httpError struct {
	url, status string
	code        int
}

func (e *httpError) Error() string { return fmt.Sprintf("GET %s: %s", e.url, e.status) }

type progressReader struct {
	rc    io.ReadCloser
	name  string
	done  int64
	total int64
	fn    func(string, int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	p.done += int64(n)
	if n > 0 || err == io.EOF {
		p.fn(p.name, p.done, p.total)
	}
	return n, err
}

func (p *progressReader) Close() error { return p.rc.Close() }

// verifyFile checks that the file at path has the given SHA-256 and size.
func verifyFile(path, wantHex string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("%s: size %d, want %d", path, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantHex {
		return fmt.Errorf("%s: SHA-256 %s, want %s", path, got, wantHex)
	}
	return nil
}
