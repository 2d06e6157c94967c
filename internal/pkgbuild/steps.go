package pkgbuild

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	kgzip "github.com/klauspost/compress/gzip"

	"github.com/keelos/keel/internal/buildkit"
	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/spec"
)

func (b *Builder) buildkit() buildkit.Config {
	if b.BuildKit != nil {
		return *b.BuildKit
	}
	return buildkit.ConfigFromEnv()
}

// What a [build] starts from.
const (
	FromScratch = "scratch"
	FromBase    = "base"
)

func isLocalRef(ref string) bool { return spec.IsLocalRef(ref) }

// localRefDir resolves a package reference of a package.toml against the
// package's directory.
func localRefDir(pkgDir, ref string) string {
	if filepath.IsAbs(ref) {
		return filepath.Clean(ref)
	}
	return filepath.Join(pkgDir, ref)
}

// planBuild adds the [build] section's inputs to the key: the steps (also
// in package.toml, which is hashed with the package directory), and what
// they start from and copy out of — other packages by their own keys,
// images by reference. The builder's address is not an input: any
// builder makes the same package.
func (b *Builder) planBuild(ctx context.Context, h *hasher, p *plan, stack []string) error {
	bd := p.pkg.Build
	data, err := marshalLabel(bd)
	if err != nil {
		return err
	}
	h.str("build", buildkit.Version, data)
	from := bd.From
	if from == "" {
		from = FromBase
	}
	switch {
	case from == FromScratch, from == FromBase:
		h.str("from", from)
	case isLocalRef(from):
		sub, err := b.planStack(ctx, localRefDir(p.pkg.Dir, from), p.arch, stack)
		if err != nil {
			return fmt.Errorf("[build] from %s: %w", from, err)
		}
		p.from = sub
		h.str("from-package", sub.key)
	default:
		h.str("from-image", from)
	}
	for i, s := range bd.Steps {
		if s.FromPk == "" || !isLocalRef(s.FromPk) {
			continue
		}
		sub, err := b.planStack(ctx, localRefDir(p.pkg.Dir, s.FromPk), p.arch, stack)
		if err != nil {
			return fmt.Errorf("[[build.step]] %d from %s: %w", i, s.FromPk, err)
		}
		if p.copyFrom == nil {
			p.copyFrom = map[int]*plan{}
		}
		p.copyFrom[i] = sub
		h.str("step-from-package", fmt.Sprint(i), sub.key)
	}
	return nil
}

// baseKeySuffix follows the package name in the cache key of a [build]
// base made of the package's own parts.
const baseKeySuffix = "-build-base:"

// newBaseHasher starts the hash of a package's own parts: what its base
// is made of. The parts' contents (file sources, Go sources, Debian
// packages) are written to it as they are to the package's hash.
func newBaseHasher(pkg *spec.Package, arch string, epoch time.Time) (*hasher, error) {
	data, err := marshalLabel(struct {
		Go     []spec.GoBin
		Debian *spec.Debian
		Files  []spec.File
	}{pkg.Go, pkg.Debian, pkg.Files})
	if err != nil {
		return nil, err
	}
	h := newHasher()
	h.str(Version, "build-base", "arch", arch, "epoch", strconv.FormatInt(epoch.Unix(), 10), data)
	return h, nil
}

// teeHash writes to two hashes and sums the first.
type teeHash struct {
	hash.Hash
	other hash.Hash
}

func (t teeHash) Write(p []byte) (int, error) {
	t.other.Write(p)
	return t.Hash.Write(p)
}

// debsInImage reports whether the image holds the unpacked Debian
// packages, so that its Debian label (read by the lock file and the SBOM)
// tells the truth: not when [build] keeps only some output paths.
func (p *plan) debsInImage() bool {
	bd := p.pkg.Build
	return bd == nil || ((bd.From == "" || bd.From == FromBase) && len(bd.Output) == 0)
}

func platformOf(arch string) buildkit.Platform {
	p := buildkit.Platform{OS: "linux", Arch: arch}
	if arch == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// buildSteps solves p's [build] on BuildKit and returns the result's
// filesystem.
func (b *Builder) buildSteps(ctx context.Context, p *plan, store *fstree.Store, work string) (*fstree.Tree, string, error) {
	bd := p.pkg.Build
	req := &buildkit.Request{
		Name:     p.pkg.Name,
		Platform: platformOf(p.arch),
		Context:  p.pkg.Dir,
		Output:   bd.Output,
		Network:  bd.Net,
	}
	from := bd.From
	switch {
	case from == "" || from == FromBase:
		src, err := b.baseSource(ctx, p, store, work)
		if err != nil {
			return nil, "", fmt.Errorf("[build] base: %w", err)
		}
		req.Base = src
	case from == FromScratch:
	case p.from != nil:
		src, err := b.packageSource(ctx, p.from, store, filepath.Join(work, "from"))
		if err != nil {
			return nil, "", fmt.Errorf("[build] from %s: %w", from, err)
		}
		req.Base = src
	default:
		req.Base = buildkit.Source{Image: from}
	}
	for i, s := range bd.Steps {
		st := buildkit.Step{Run: s.Run, Env: s.Env, Cwd: s.Cwd, Cache: s.Cache, Copy: s.Copy, To: s.To}
		if s.FromPk != "" {
			src := buildkit.Source{Image: s.FromPk}
			if sub := p.copyFrom[i]; sub != nil {
				var err error
				if src, err = b.packageSource(ctx, sub, store, filepath.Join(work, fmt.Sprintf("step-%d", i))); err != nil {
					return nil, "", fmt.Errorf("[[build.step]] %d from %s: %w", i, s.FromPk, err)
				}
			}
			st.From = &src
		}
		req.Steps = append(req.Steps, st)
	}
	bk := b.buildkit()
	b.progress("%s (%s): %d build steps on BuildKit", p.pkg.Name, p.arch, len(req.Steps))
	result := filepath.Join(work, "result.tar")
	if err := bk.Solve(ctx, req, result); err != nil {
		return nil, "", err
	}
	t, err := readOCITar(result, filepath.Join(work, "result"), store)
	if err != nil {
		return nil, "", fmt.Errorf("reading BuildKit's result: %w", err)
	}
	return t, fmt.Sprintf("build: %d steps", len(req.Steps)), nil
}

// baseSource lays out the package's own parts as the base of its build:
// from the cache when the parts are unchanged, else built and cached (one
// layer, quickly compressed: it never leaves this machine).
func (b *Builder) baseSource(ctx context.Context, p *plan, store *fstree.Store, work string) (buildkit.Source, error) {
	if p.pkg.Debian == nil && len(p.pkg.Go) == 0 && len(p.pkg.Files) == 0 {
		return buildkit.Source{}, nil
	}
	dir := filepath.Join(work, "base")
	if img, err := b.Cache.Image(p.baseKey); err == nil {
		// Its one layer is the tar materialize writes.
		b.progress("%s (%s): build base cached", p.pkg.Name, p.arch)
		return layerSource(img, dir)
	} else if !errors.Is(err, cache.ErrNotFound) {
		return buildkit.Source{}, err
	}
	parts, err := b.parts(ctx, p, store, work)
	if err != nil {
		return buildkit.Source{}, err
	}
	t := fstree.New(store)
	for _, pt := range parts {
		if err := t.Merge(pt.tree); err != nil {
			return buildkit.Source{}, err
		}
	}
	layerPath := filepath.Join(work, "base-layer.tar.gz")
	if err := writeFastLayer(t, layerPath, b.epoch()); err != nil {
		return buildkit.Source{}, err
	}
	layer, err := tarball.LayerFromFile(layerPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return buildkit.Source{}, err
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		return buildkit.Source{}, err
	}
	if err := b.Cache.PutImage(p.baseKey, img); err != nil {
		return buildkit.Source{}, err
	}
	return b.materialize(t, dir)
}

// layerSource writes the one layer of img, uncompressed, as
// dir/rootfs.tar.
func layerSource(img v1.Image, dir string) (buildkit.Source, error) {
	layers, err := img.Layers()
	if err != nil {
		return buildkit.Source{}, err
	}
	if len(layers) != 1 {
		return buildkit.Source{}, fmt.Errorf("cached build base has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return buildkit.Source{}, err
	}
	defer rc.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return buildkit.Source{}, err
	}
	p := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		return buildkit.Source{}, err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return buildkit.Source{}, fmt.Errorf("cached build base: %w", err)
	}
	return buildkit.Source{Tar: p}, nil
}

// writeFastLayer writes t as a gzipped tar at the fastest level.
func writeFastLayer(t *fstree.Tree, dst string, epoch time.Time) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := kgzip.NewWriterLevel(bw, kgzip.BestSpeed)
	if err == nil {
		err = t.WriteTar(zw, epoch)
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// packageSource builds another package (normally a cache hit) and lays
// its filesystem out as a local context for the builder.
func (b *Builder) packageSource(ctx context.Context, sub *plan, store *fstree.Store, dir string) (buildkit.Source, error) {
	res, err := b.BuildResult(ctx, sub.pkg.Dir, sub.arch)
	if err != nil {
		return buildkit.Source{}, err
	}
	t, err := imageTree(res.Image, store)
	if err != nil {
		return buildkit.Source{}, err
	}
	return b.materialize(t, dir)
}

// imageTree flattens an image's layers into a tree.
func imageTree(img v1.Image, store *fstree.Store) (*fstree.Tree, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	t := fstree.New(store)
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		err = t.ApplyTar(rc, fstree.ApplyOptions{})
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return t, nil
}

// materialize writes t as dir/rootfs.tar, for BuildKit to unpack as a
// local context (keeping the tree's owners, which a directory sent to
// BuildKit would lose).
func (b *Builder) materialize(t *fstree.Tree, dir string) (buildkit.Source, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return buildkit.Source{}, err
	}
	p := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		return buildkit.Source{}, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = t.WriteTar(bw, b.epoch())
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return buildkit.Source{}, err
	}
	return buildkit.Source{Tar: p}, nil
}

// readOCITar unpacks an OCI layout tarball into dir and applies the
// layers of its one image to a new tree.
func readOCITar(tarPath, dir string, store *fstree.Store) (*fstree.Tree, error) {
	if err := cache.UntarLayout(tarPath, dir); err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) != 1 {
		return nil, fmt.Errorf("want one image in the OCI layout, got %d", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	return imageTree(img, store)
}

// BuildIndex builds the package in dir for each architecture and stores
// an OCI image index of the results in the cache, under the key IndexKey
// gives (so an unchanged package is again a cache hit, with no build).
func (b *Builder) BuildIndex(ctx context.Context, dir string, archs []string) (v1.ImageIndex, string, error) {
	archs = indexArchs(archs)
	if len(archs) == 0 {
		return nil, "", errors.New("package index: no architecture")
	}
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	keys := make([]string, len(archs))
	for i, arch := range archs {
		res, err := b.BuildResult(ctx, dir, arch)
		if err != nil {
			return nil, "", err
		}
		keys[i] = res.Key
		plat := platformOf(arch)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: res.Image,
			Descriptor: v1.Descriptor{
				MediaType: types.OCIManifestSchema1,
				Platform:  &v1.Platform{OS: plat.OS, Architecture: plat.Arch, Variant: plat.Variant},
			},
		})
	}
	key := indexKey(archs, keys)
	name, _, _ := strings.Cut(key, ":")
	if cached, err := b.Cache.Index(key); err == nil {
		return cached, key, nil
	}
	if err := b.Cache.PutIndex(key, idx); err != nil {
		return nil, "", fmt.Errorf("package %s: caching the index: %w", name, err)
	}
	cached, err := b.Cache.Index(key)
	return cached, key, err
}

// IndexKey returns "NAME:HASH", the key and tag of the package in dir's
// index for archs, where HASH is the hash of the per-architecture keys.
// Nothing is built.
func (b *Builder) IndexKey(ctx context.Context, dir string, archs []string) (string, error) {
	archs = indexArchs(archs)
	if len(archs) == 0 {
		return "", errors.New("package index: no architecture")
	}
	keys := make([]string, len(archs))
	for i, arch := range archs {
		k, err := b.Key(ctx, dir, arch)
		if err != nil {
			return "", err
		}
		keys[i] = k
	}
	return indexKey(archs, keys), nil
}

// indexArchs is archs sorted, each once: the order an index lists them.
func indexArchs(archs []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(archs)))
}

// indexKey hashes the key of each architecture in archs (sorted, each
// once) into the index's key.
func indexKey(archs, keys []string) string {
	h := sha256.New()
	for i, arch := range archs {
		fmt.Fprintf(h, "%s=%s\n", arch, keys[i])
	}
	name, _, _ := strings.Cut(keys[0], ":")
	return name + ":" + hex.EncodeToString(h.Sum(nil))
}
