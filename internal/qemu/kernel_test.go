package qemu

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/debian"
)

// debianKernelByClient fetches Debian's cloud kernel for arch through
// keel's own Debian client (needs the network): apt-get cannot download a
// foreign architecture unless dpkg is configured for it.
func debianKernelByClient(t *testing.T, arch string) string {
	t.Helper()
	ctx := context.Background()
	mirror, err := debian.MirrorFromHost()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := debian.NewClient(mirror, tempStore{dir})
	pkgs, err := c.Resolve(ctx, "bookworm", arch, []string{"linux-image-cloud-" + arch}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var deb string
	for _, p := range pkgs {
		if strings.HasPrefix(p.Name, "linux-image-") && p.Name != "linux-image-cloud-"+arch {
			if deb, err = c.Fetch(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if deb == "" {
		t.Fatalf("linux-image-cloud-%s resolved to no kernel: %v", arch, pkgs)
	}
	rc, err := debian.DataTar(deb)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s holds no /boot/vmlinuz-*", deb)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(strings.TrimPrefix(h.Name, "."), "/boot/vmlinuz-") {
			out := filepath.Join(dir, "vmlinuz")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
}

// tempStore keeps downloads in a directory, checked by SHA-256 and size.
type tempStore struct{ dir string }

func (s tempStore) Fetch(ctx context.Context, digest string, size int64, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	want := strings.TrimPrefix(digest, "sha256:")
	rc, err := open(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	f, err := os.CreateTemp(s.dir, "fetch-")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want || n != size {
		return "", errors.New("download does not match its digest")
	}
	return f.Name(), nil
}
