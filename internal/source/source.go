// Package source turns any image reference a spec can name into a
// v1.Image for one architecture: a local package directory (built by
// pkgbuild), an OCI image layout directory, an OCI or docker archive
// .tar, or a registry reference (pulled once, then served from the cache).
package source

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
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/pkgbuild"
	"github.com/keelos/keel/internal/spec"
)

// Resolver resolves image references. Its zero value is not usable: Cache
// is required, and Packages is needed for local package directories.
type Resolver struct {
	Cache    *cache.Cache
	Packages *pkgbuild.Builder
	// Pull re-resolves registry tags even when the cache knows them.
	Pull bool
	// Offline downloads nothing: a registry image the cache does not
	// hold is an error wrapping ErrOffline.
	Offline bool
	// Locked, when set, gives every registry reference its digest: the
	// image is the one Locked records (pulled by digest if not cached),
	// and a reference it does not record is an error.
	Locked *lock.File
	// Keychain gives registry credentials; nil means authn.DefaultKeychain
	// (the docker config and its credential helpers).
	Keychain authn.Keychain
}

// Origin is the kind of source an image came from. It decides whether
// the image's own configuration (its org.keel.config label) is trusted:
// only a package directory is the user's own source.
type Origin int

// The origins of an image.
const (
	Package  Origin = iota + 1 // a local package directory, built by pkgbuild
	Layout                     // an OCI image layout directory
	Archive                    // an OCI or docker image archive (.tar)
	Registry                   // a registry reference, pulled
)

// Trusted reports whether the image was built from the user's own
// source (a package directory) rather than pulled from elsewhere.
func (o Origin) Trusted() bool { return o == Package }

func (o Origin) String() string {
	switch o {
	case Package:
		return "package directory"
	case Layout:
		return "OCI layout directory"
	case Archive:
		return "image archive"
	case Registry:
		return "registry"
	}
	return "unknown origin"
}

// Image returns the image ref names for linux/arch.
func (r *Resolver) Image(ctx context.Context, ref spec.ImageRef, arch string) (v1.Image, error) {
	img, _, err := r.Resolve(ctx, ref, arch)
	return img, err
}

// Resolve returns the image ref names for linux/arch and where it came
// from.
func (r *Resolver) Resolve(ctx context.Context, ref spec.ImageRef, arch string) (v1.Image, Origin, error) {
	img, origin, err := r.image(ctx, ref, arch)
	if err != nil {
		return nil, 0, fmt.Errorf("image %s (%s): %w", ref.Ref, arch, err)
	}
	return img, origin, nil
}

func (r *Resolver) image(ctx context.Context, ref spec.ImageRef, arch string) (v1.Image, Origin, error) {
	if !ref.IsLocal() {
		img, err := r.registry(ctx, ref.Ref, arch)
		return img, Registry, err
	}
	p := ref.Path()
	fi, err := os.Stat(p)
	if err != nil {
		return nil, 0, err
	}
	if !fi.IsDir() {
		img, err := r.archive(p, arch)
		return img, Archive, err
	}
	switch {
	case exists(filepath.Join(p, "package.toml")):
		if r.Packages == nil {
			return nil, 0, errors.New("a local package needs a package builder")
		}
		img, err := r.Packages.Build(ctx, p, arch)
		return img, Package, err
	case exists(filepath.Join(p, "oci-layout")):
		img, err := fromLayout(p, arch)
		return img, Layout, err
	default:
		return nil, 0, fmt.Errorf("%s holds neither a package.toml nor an OCI image layout", p)
	}
}

// ErrOffline is wrapped by the error for a registry image an offline
// resolver does not hold.
var ErrOffline = errors.New("offline")

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// registry resolves a registry reference. A digest reference already
// cached never touches the network; a tag does only when not cached or
// with Pull. Images are cached under "REPO@DIGEST" (the platform
// manifest's digest) and the user's reference is recorded as an alias
// "REF linux/ARCH" of the same image.
func (r *Resolver) registry(ctx context.Context, s, arch string) (v1.Image, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("not a local path or an image reference: %w", err)
	}
	if r.Locked != nil {
		dig, ok := r.Locked.Image(s, arch)
		if !ok {
			return nil, errors.New("not in build.lock: run keel lock")
		}
		if ref, err = name.NewDigest(ref.Context().Name() + "@" + dig); err != nil {
			return nil, fmt.Errorf("build.lock: %w", err)
		}
		// A locked digest is the platform image's: the key it is
		// cached under.
		img, err := r.Cache.Image(ref.Name())
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, cache.ErrNotFound) {
			return nil, err
		}
	}
	_, byDigest := ref.(name.Digest)
	alias := ref.Name() + " linux/" + arch
	if byDigest || !r.Pull {
		img, err := r.Cache.Image(alias)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, cache.ErrNotFound) {
			return nil, err
		}
	}
	if r.Offline {
		return nil, fmt.Errorf("%w: %s for linux/%s is not in the cache", ErrOffline, ref.Name(), arch)
	}
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	img, err := remote.Image(ref,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
	if err != nil {
		return nil, err
	}
	if err := checkPlatform(img, arch); err != nil {
		return nil, err
	}
	dig, err := img.Digest()
	if err != nil {
		return nil, err
	}
	key := ref.Context().Name() + "@" + dig.String()
	cached, err := r.Cache.Image(key)
	switch {
	case err == nil:
	case errors.Is(err, cache.ErrNotFound):
		// Reading every blob through remote verifies it against its
		// digest, so nothing unverified reaches the cache.
		if err := r.Cache.PutImage(key, img); err != nil {
			return nil, err
		}
		if cached, err = r.Cache.Image(key); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	if err := r.Cache.PutImage(alias, cached); err != nil {
		return nil, err
	}
	return cached, nil
}

// checkPlatform refuses an image built for another architecture: a
// single-platform image is returned by remote as is, whatever was asked.
func checkPlatform(img v1.Image, arch string) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if cf.Architecture != arch || (cf.OS != "" && cf.OS != "linux") {
		return fmt.Errorf("image is for %s/%s, not linux/%s", cf.OS, cf.Architecture, arch)
	}
	return nil
}

// fromLayout picks the linux/arch image of an OCI image layout and
// verifies every blob of it against its digest.
func fromLayout(dir, arch string) (v1.Image, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, err
	}
	img, err := PickPlatform(idx, arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := VerifyBlobs(img); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return img, nil
}

// VerifyBlobs reads the config and every layer of img and checks each
// against the digest and size its manifest gives. Layout and archive
// blobs are plain files that nothing checked: a corrupt one must be
// refused here, not unpacked into an image.
func VerifyBlobs(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != m.Config.Digest.Hex || int64(len(raw)) != m.Config.Size {
		return fmt.Errorf("config blob %s: content does not match its digest or size, refused", m.Config.Digest)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range layers {
		want := m.Layers[i]
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer %s: %w", want.Digest, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", want.Digest, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.Digest.Hex || n != want.Size {
			return fmt.Errorf("layer blob %s: content has digest sha256:%s (%d bytes), want %d bytes: refused", want.Digest, got, n, want.Size)
		}
	}
	return nil
}

// PickPlatform returns the linux/arch image of an index, descending into
// nested indexes, using the descriptor's platform or, when it has none,
// the image's config.
func PickPlatform(idx v1.ImageIndex, arch string) (v1.Image, error) {
	var seen []string
	img, err := pick(idx, arch, &seen)
	if err != nil {
		return nil, err
	}
	if img == nil {
		slices.Sort(seen)
		return nil, fmt.Errorf("no linux/%s image (found: %s)", arch, strings.Join(slices.Compact(seen), ", "))
	}
	return img, nil
}

func pick(idx v1.ImageIndex, arch string, seen *[]string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			img, err := pick(child, arch, seen)
			if err != nil || img != nil {
				return img, err
			}
			continue
		}
		if !d.MediaType.IsImage() {
			continue
		}
		if d.Platform != nil {
			*seen = append(*seen, d.Platform.OS+"/"+d.Platform.Architecture)
			if d.Platform.OS != "linux" || d.Platform.Architecture != arch {
				continue
			}
			return idx.Image(d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		*seen = append(*seen, cf.OS+"/"+cf.Architecture)
		if cf.Architecture == arch && (cf.OS == "" || cf.OS == "linux") {
			return img, nil
		}
	}
	return nil, nil
}

// archive reads an OCI archive (a tar of an image layout) or a docker
// archive (docker save). OCI archives are unpacked into a temporary
// layout and copied into the cache, so the image outlives the unpacking.
func (r *Resolver) archive(p, arch string) (v1.Image, error) {
	isOCI, err := hasEntry(p, "oci-layout")
	if err != nil {
		return nil, err
	}
	if !isOCI {
		img, err := tarball.ImageFromPath(p, nil)
		if err != nil {
			return nil, fmt.Errorf("neither an OCI nor a docker archive: %w", err)
		}
		if err := checkPlatform(img, arch); err != nil {
			return nil, err
		}
		if err := VerifyBlobs(img); err != nil {
			return nil, err
		}
		return img, nil
	}
	tmp, err := os.MkdirTemp("", "keel-oci-archive-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := cache.UntarLayout(p, tmp); err != nil {
		return nil, err
	}
	img, err := fromLayout(tmp, arch)
	if err != nil {
		return nil, err
	}
	dig, err := img.Digest()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	key := "archive:" + abs + "@" + dig.String()
	if err := r.Cache.PutImage(key, img); err != nil {
		return nil, err
	}
	return r.Cache.Image(key)
}

func hasEntry(p, want string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading %s: %w", p, err)
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) == want {
			return true, nil
		}
	}
}
