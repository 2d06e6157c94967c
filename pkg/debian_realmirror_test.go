package pkg_test

// Tests named *RealMirror talk to the Debian mirror of the host's apt
// configuration (or $KEEL_DEBIAN_MIRROR).

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/spec"
	"github.com/keelos/keel/internal/testenv"
)

// debStore keeps downloads by digest in a directory that outlives the
// test, so a second run does not download again.
type debStore struct{ dir string }

func (s debStore) Fetch(ctx context.Context, digest string, size int64, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		return "", fmt.Errorf("bad digest %q", digest)
	}
	p := filepath.Join(s.dir, hexDigest)
	if f, err := os.Open(p); err == nil {
		h := sha256.New()
		_, err := io.Copy(h, f)
		f.Close()
		if err == nil && hex.EncodeToString(h.Sum(nil)) == hexDigest {
			return p, nil
		}
	}
	rc, err := open(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(s.dir, ".dl-*")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != hexDigest {
		err = errors.New("digest mismatch")
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return p, nil
}

// matches reports whether p or one of its parent directories matches one
// of the globs, the way package.toml's paths and paths-exclude read.
func matches(globs []string, p string) bool {
	for q := p; q != "/" && q != "."; q = path.Dir(q) {
		for _, g := range globs {
			if ok, _ := path.Match(g, q); ok {
				return true
			}
		}
	}
	return false
}

// TestDebianListsResolveRealMirror resolves every package's Debian list
// for both architectures, and reports what each pulls and the size of
// the files kept after paths and paths-exclude.
func TestDebianListsResolveRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	mirror, err := debian.MirrorFromHost()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), "keel-pkg-test-debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := debian.NewClient(mirror, debStore{dir})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, d := range packageDirs(t) {
		pk, err := spec.LoadPackage(d)
		if err != nil {
			t.Fatal(err)
		}
		if pk.Debian == nil {
			continue
		}
		for _, arch := range spec.Archs {
			names := make([]string, len(pk.Debian.Packages))
			for i, n := range pk.Debian.Packages {
				names[i] = strings.ReplaceAll(n, "{arch}", arch)
			}
			pkgs, err := c.Resolve(ctx, pk.Debian.Suite, arch, names, pk.Debian.Exclude)
			if err != nil {
				t.Errorf("%s/%s: %v", d, arch, err)
				continue
			}
			var list []string
			var kept, files int64
			for _, p := range pkgs {
				list = append(list, p.Name)
				for _, bad := range []string{"perl-base", "debconf", "adduser", "ucf", "systemd", "dpkg"} {
					if p.Name == bad {
						t.Errorf("%s/%s pulls %s", d, arch, bad)
					}
				}
				deb, err := c.Fetch(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				n, k, err := keptSize(deb, pk.Debian)
				if err != nil {
					t.Fatalf("%s: %v", p.Name, err)
				}
				kept += n
				files += k
			}
			t.Logf("%s/%s: %d packages, %d files, %.1f MiB kept: %s", d, arch, len(pkgs), files, float64(kept)/(1<<20), strings.Join(list, " "))
		}
	}
}

func keptSize(deb string, d *spec.Debian) (size, files int64, err error) {
	rc, err := debian.DataTar(deb)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return size, files, nil
		}
		if err != nil {
			return 0, 0, err
		}
		p := path.Clean("/" + h.Name)
		if len(d.Paths) > 0 && !matches(d.Paths, p) {
			continue
		}
		if matches(d.PathsExclude, p) || h.Typeflag != tar.TypeReg {
			continue
		}
		size += h.Size
		files++
	}
}
