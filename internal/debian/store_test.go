package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// dirStore is a small directory-backed Store for the tests: it keeps
// content under its hex digest and verifies digest and size both when it
// downloads and when it hands out what it holds.
type dirStore struct {
	dir string
	// trusting skips the check of content already held, to show that
	// the client does not rely on the store alone.
	trusting  bool
	downloads int
}

func (s *dirStore) path(digest string) string {
	return filepath.Join(s.dir, strings.TrimPrefix(digest, "sha256:"))
}

func (s *dirStore) Fetch(ctx context.Context, digest string, size int64, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexDigest) != 64 {
		return "", fmt.Errorf("bad digest %q", digest)
	}
	p := s.path(digest)
	if _, err := os.Stat(p); err == nil {
		if s.trusting {
			return p, nil
		}
		if err := verifyFile(p, hexDigest, size); err == nil {
			return p, nil
		}
	}
	rc, err := open(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	s.downloads++
	tmp, err := os.CreateTemp(s.dir, "download-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("%s: got %d bytes, want %d", digest, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
		return "", fmt.Errorf("%s: content has digest sha256:%s", digest, got)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", err
	}
	return p, nil
}
