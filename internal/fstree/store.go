package fstree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keelos/keel/internal/cachefile"
)

// Store holds file contents on disk, named by their SHA-256, so that trees
// carry only metadata and no archive path ever reaches the host filesystem.
// Every file is hashed whole before any byte of it is used (once per
// process, see cachefile.Verifier).
type Store struct {
	dir   string
	warn  func(msg string)
	files *cachefile.Verifier
}

// StoreOption configures NewStore.
type StoreOption func(*Store)

// WithWarnings sends the store's warnings to warn: each corrupt file it
// finds and replaces is reported there.
func WithWarnings(warn func(msg string)) StoreOption {
	return func(s *Store) { s.warn = warn }
}

// tempPrefix starts the names of the store's temporaries, which live
// beside its files so that a finished one is renamed into place.
const tempPrefix = ".put-"

func isTemp(name string) bool { return strings.HasPrefix(name, tempPrefix) }

// NewStore opens (creating if needed) a content store in dir.
func NewStore(dir string, opts ...StoreOption) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	s := &Store{dir: dir, files: &cachefile.Verifier{}}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Put stores the content of r and returns its digest ("sha256:<hex>") and
// size. A file already held for that digest is checked against it first:
// a good one is kept, a corrupt one is replaced by r's content (hashed as
// it was written), with a warning. So whatever damage the store has, the
// next build that unpacks the layer a file came from repairs it.
func (s *Store) Put(r io.Reader) (string, int64, error) {
	tmp, err := cachefile.CreateTemp(filepath.Join(s.dir, "sha256"), tempPrefix+"*")
	if err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	// Closed only after the rename: its lock tells Clean it is in use.
	defer tmp.Close()
	defer os.Remove(tmp.Name()) // no-op once renamed
	digest, n, err := cachefile.Sum(io.TeeReader(r, tmp))
	if err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	dst := s.Path(digest)
	f, err := s.files.Open(dst, digest, n)
	switch {
	case err == nil:
		return digest, n, f.Close()
	case errors.Is(err, fs.ErrNotExist):
	case cachefile.IsMismatch(err):
		s.warnf("content store: %s was corrupt (%v): replaced by the copy from its layer", dst, err)
		s.files.Forget(dst)
		// A rename replaces a file, not a directory or the like.
		var m *cachefile.MismatchError
		if errors.As(err, &m) && m.GotSize < 0 {
			if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", 0, fmt.Errorf("content store: %w", err)
			}
		}
	default:
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	return digest, n, nil
}

func (s *Store) warnf(format string, args ...any) {
	if s.warn != nil {
		s.warn(fmt.Sprintf(format, args...))
	}
}

// Path is where the content with digest lives (whether or not it is held).
func (s *Store) Path(digest string) string {
	return filepath.Join(s.dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// Open returns the content with digest, after hashing it whole, so a
// store damaged on disk cannot pass into an image. A corrupt file is
// removed: the next Put of its content (the next build that unpacks its
// layer) stores it again.
func (s *Store) Open(digest string) (*os.File, error) {
	if _, err := cachefile.ParseHex(digest); err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	p := s.Path(digest)
	f, err := s.files.Open(p, digest, -1)
	if cachefile.IsMismatch(err) {
		s.files.Forget(p)
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, fmt.Errorf("content store: %s is corrupt (%v), and removing it failed: %w", p, err, rerr)
		}
		return nil, fmt.Errorf("content store: %s is corrupt (%w): removed; the next build stores it again from its layer", p, err)
	}
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return f, nil
}

// Verify hashes every file of the store and reports how many it checked
// and which are corrupt; with repair it removes those (a later build
// stores each again from its layer).
func (s *Store) Verify(ctx context.Context, repair bool) (int, []cachefile.Problem, error) {
	n, bad, err := cachefile.VerifyDir(ctx, filepath.Join(s.dir, "sha256"), isTemp)
	if err != nil {
		return n, bad, fmt.Errorf("content store: %w", err)
	}
	if repair {
		for _, b := range bad {
			s.files.Forget(b.Path)
			if err := os.Remove(b.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, bad, fmt.Errorf("content store: %w", err)
			}
		}
	}
	return n, bad, nil
}

// Clean removes the temporaries that no live process is writing (left by
// a killed one) and reports how many files and bytes it freed.
func (s *Store) Clean() (int, int64, error) {
	n, freed, err := cachefile.RemoveStale(filepath.Join(s.dir, "sha256"), isTemp)
	if err != nil {
		return n, freed, fmt.Errorf("content store: %w", err)
	}
	return n, freed, nil
}
