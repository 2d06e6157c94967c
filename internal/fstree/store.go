package fstree

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Store holds file contents on disk, named by their SHA-256, so that trees
// carry only metadata and no archive path ever reaches the host filesystem.
type Store struct {
	dir string
}

// NewStore opens (creating if needed) a content store in dir.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Put stores the content of r and returns its digest ("sha256:<hex>") and
// size. Content already held is not stored twice.
func (s *Store) Put(r io.Reader) (string, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "sha256"), ".put-*")
	if err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	dst := s.Path(digest)
	// A same-size file is taken as the same content; Open verifies anyway.
	if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() && st.Size() == n {
		return digest, n, nil
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	return digest, n, nil
}

// Path is where the content with digest lives (whether or not it is held).
func (s *Store) Path(digest string) string {
	return filepath.Join(s.dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// Open returns the content with digest. The reader checks the bytes against
// the digest as they are read and fails at the end if they differ, so a
// store damaged on disk cannot pass unnoticed into an image.
func (s *Store) Open(digest string) (io.ReadCloser, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexd) != sha256.Size*2 || strings.ContainsAny(hexd, "/\\.") {
		return nil, fmt.Errorf("content store: bad digest %q", digest)
	}
	f, err := os.Open(s.Path(digest))
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return &verifyingReader{f: f, h: sha256.New(), want: digest}, nil
}

type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	want string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("content store: %s is corrupt: its content hashes to %s", v.want, got)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }
