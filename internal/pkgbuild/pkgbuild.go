// Package pkgbuild builds a package directory (package.toml) into an OCI
// image for one architecture without Docker: static Go programs are
// cross-compiled, Debian packages are resolved and unpacked by the pure-Go
// Debian client, files are placed as written. Every layer is a
// deterministic tar, and the image is tagged (and cached) by the hash of
// all its inputs, so an unchanged package is never rebuilt.
package pkgbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keelos/keel/internal/buildkit"
	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/spec"
)

// Version is the builder's own version: it enters every input hash, so
// changing how images are assembled invalidates cached packages.
const Version = "keel-pkgbuild/2"

// Builder builds package images. Cache is required; Debian is needed only
// by packages with a [debian] section.
type Builder struct {
	Cache  *cache.Cache
	Debian *debian.Client
	// Epoch is SOURCE_DATE_EPOCH: every mtime and the image's creation
	// time. The zero value means epoch.Default.
	Epoch time.Time
	// Progress, if set, is told what the builder is doing.
	Progress func(msg string)
	// BuildKit is the builder that solves [build] sections; nil means
	// the environment's (KEEL_BUILDKIT_HOST, …).
	// It is contacted only when a package with [build] is not cached.
	BuildKit *buildkit.Config
	// Locked, when set, pins every [debian] section: its packages are
	// the ones Locked records, and a section it does not record is an
	// error; no index is read.
	Locked *lock.File

	goOnce sync.Once
	goVer  string
	goErr  error

	mu         sync.Mutex
	debianSets []lock.DebianSet // what each [debian] section resolved to
}

// DebianSets returns what every [debian] section planned so far resolved
// to (or was pinned to), for a lock file.
func (b *Builder) DebianSets() []lock.DebianSet {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.debianSets)
}

// Result is the outcome of one package build.
type Result struct {
	Image    v1.Image
	Key      string           // the cache key: "NAME:INPUTHASH"
	CacheHit bool             // the image came from the cache, nothing was built
	Debs     []imagelabel.Deb // what the image's Debian label lists
}

func (b *Builder) epoch() time.Time {
	if b.Epoch.IsZero() {
		return epoch.Default()
	}
	return b.Epoch.UTC()
}

func (b *Builder) progress(format string, args ...any) {
	if b.Progress != nil {
		b.Progress(fmt.Sprintf(format, args...))
	}
}

// plan is a package with everything its key depends on resolved.
type plan struct {
	pkg  *spec.Package
	arch string
	debs []debian.Package
	key  string
	// [build] inputs that are other packages.
	from     *plan
	copyFrom map[int]*plan
	// baseKey is the cache key of the [build] base made of the
	// package's own parts (from = "base").
	baseKey string
}

// Key returns the input hash of the package in dir for arch, as
// "NAME:HEX": the cache key and tag of its image.
func (b *Builder) Key(ctx context.Context, dir, arch string) (string, error) {
	p, err := b.plan(ctx, dir, arch)
	if err != nil {
		return "", err
	}
	return p.key, nil
}

// Build returns the image of the package in dir for linux/arch, from the
// cache when its inputs are unchanged.
func (b *Builder) Build(ctx context.Context, dir, arch string) (v1.Image, error) {
	r, err := b.BuildResult(ctx, dir, arch)
	if err != nil {
		return nil, err
	}
	return r.Image, nil
}

// BuildResult is Build, also telling whether the cache held the image and
// which Debian packages it contains.
func (b *Builder) BuildResult(ctx context.Context, dir, arch string) (*Result, error) {
	if b.Cache == nil {
		return nil, errors.New("package builder: no cache")
	}
	p, err := b.plan(ctx, dir, arch)
	if err != nil {
		return nil, err
	}
	res := &Result{Key: p.key, Debs: debInfos(p.debs)}
	img, err := b.Cache.Image(p.key)
	if err == nil {
		b.progress("%s (%s): cached", p.pkg.Name, arch)
		res.Image, res.CacheHit = img, true
		return res, nil
	}
	if !errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("package %s: %w", p.pkg.Name, err)
	}
	built, cleanup, err := b.assemble(ctx, p)
	defer cleanup()
	if err != nil {
		return nil, fmt.Errorf("package %s (%s): %w", p.pkg.Name, arch, err)
	}
	if err := b.Cache.PutImage(p.key, built); err != nil {
		return nil, fmt.Errorf("package %s (%s): caching the image: %w", p.pkg.Name, arch, err)
	}
	// Serve the cached copy: the built layers live in temporary files.
	if res.Image, err = b.Cache.Image(p.key); err != nil {
		return nil, fmt.Errorf("package %s (%s): %w", p.pkg.Name, arch, err)
	}
	return res, nil
}

func debInfos(debs []debian.Package) []imagelabel.Deb {
	out := make([]imagelabel.Deb, 0, len(debs))
	for _, d := range debs {
		out = append(out, imagelabel.Deb{Name: d.Name, Version: d.Version, Arch: d.Arch, Source: d.Source, SHA256: d.SHA256})
	}
	return out
}

func (b *Builder) plan(ctx context.Context, dir, arch string) (*plan, error) {
	return b.planStack(ctx, dir, arch, nil)
}

// planStack is plan, with the packages whose [build] led here (to refuse
// cycles).
func (b *Builder) planStack(ctx context.Context, dir, arch string, stack []string) (*plan, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range stack {
		if s == abs {
			return nil, fmt.Errorf("packages build from each other: %s", strings.Join(append(stack, abs), " -> "))
		}
	}
	stack = append(stack, abs)
	pkg, err := spec.LoadPackage(abs)
	if err != nil {
		return nil, err
	}
	if pkg.Dir == "" {
		pkg.Dir = abs
	}
	p := &plan{pkg: pkg, arch: arch}
	h := newHasher()
	h.str(Version, "arch", arch, "epoch", strconv.FormatInt(b.epoch().Unix(), 10))
	// A source keel refuses is reported with its [[file]] entry before
	// the directory holding it is hashed.
	if err := checkSources(ctx, pkg.Files); err != nil {
		return nil, err
	}
	// The package directory holds package.toml, Go sources of its own
	// programs and the [[file]] sources.
	if err := hashDir(ctx, h, pkg.Dir); err != nil {
		return nil, fmt.Errorf("package %s: hashing inputs: %w", pkg.Name, err)
	}
	// Included files may live outside it.
	for _, inc := range pkg.Include {
		name := filepath.Join(pkg.Dir, inc)
		h.str("include", inc)
		if err := h.hostFile(ctx, filepath.Dir(name), filepath.Base(name)); err != nil {
			return nil, fmt.Errorf("package %s: include %s: %w", pkg.Name, inc, err)
		}
	}
	// The base of a [build] from its own parts is cached apart, under the
	// hash of those parts alone: a change to what the steps do (a copied
	// source, a step) reuses it.
	var base *hasher
	if pkg.Build != nil && (pkg.Build.From == "" || pkg.Build.From == FromBase) {
		if base, err = newBaseHasher(pkg, arch, b.epoch()); err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg.Name, err)
		}
		h.h = teeHash{h.h, base.h}
	}
	for _, f := range pkg.Files {
		if f.Source == "" {
			continue
		}
		// Each source is an input in its own right, as well as an entry
		// of the directory.
		h.str("file-source", f.Path)
		if err := h.hostFile(ctx, f.Dir, f.Source); err != nil {
			return nil, sourceError(f, err)
		}
	}
	for _, g := range pkg.Go {
		if err := b.hashGo(ctx, h, pkg.Dir, arch, g); err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg.Name, err)
		}
	}
	if pkg.Debian != nil {
		b.progress("%s (%s): resolving Debian packages", pkg.Name, arch)
		debs, err := b.resolveDebian(ctx, pkg.Debian, arch)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg.Name, err)
		}
		p.debs = debs
		for _, d := range debs {
			h.str("deb", d.Name, d.Version, d.Arch, d.SHA256)
		}
	}
	if base != nil {
		p.baseKey = pkg.Name + baseKeySuffix + base.sum()
		h.h = h.h.(teeHash).Hash
	}
	if pkg.Build != nil {
		if err := b.planBuild(ctx, h, p, stack); err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg.Name, err)
		}
	}
	p.key = pkg.Name + ":" + h.sum()
	return p, nil
}

// goBuild cross-compiles one [[go]] entry into out.
func (b *Builder) goBuild(ctx context.Context, dir, arch string, g spec.GoBin, out string) error {
	ldflags := "-s -w -buildid="
	if g.Ldflags != "" {
		ldflags += " " + g.Ldflags
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out}
	if len(g.Tags) > 0 {
		args = append(args, "-tags", strings.Join(g.Tags, ","))
	}
	args = append(args, g.Main)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv(arch)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", g.Main, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// defaultDrops are Debian paths nobody needs on a container host.
var defaultDrops = []string{"/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale", "/usr/share/lintian"}

// pathFilter decides which unpacked Debian paths stay: those Paths
// selects (all when empty), minus PathsExclude and the default drops.
type pathFilter struct{ include, exclude []string }

func newPathFilter(d *spec.Debian) pathFilter {
	f := pathFilter{include: d.Paths, exclude: append([]string(nil), d.PathsExclude...)}
	for _, drop := range defaultDrops {
		// An explicit Paths entry inside a default drop keeps it.
		wanted := false
		for _, inc := range d.Paths {
			if inc == drop || strings.HasPrefix(inc, drop+"/") {
				wanted = true
			}
		}
		if !wanted {
			f.exclude = append(f.exclude, drop)
		}
	}
	return f
}

// matches reports whether p or one of its ancestors matches a pattern.
func matches(patterns []string, p string) bool {
	for a := p; a != "/"; a = path.Dir(a) {
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, a); ok || pat == a {
				return true
			}
		}
	}
	return false
}

// mayContain reports whether directory p could hold a match of a pattern.
func mayContain(patterns []string, p string) bool {
	pc := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for _, pat := range patterns {
		patc := strings.Split(strings.TrimPrefix(pat, "/"), "/")
		if len(pc) >= len(patc) {
			continue
		}
		ok := true
		for i := range pc {
			if m, _ := path.Match(patc[i], pc[i]); !m {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (f pathFilter) keep(p string, isDir bool) bool {
	if matches(f.exclude, p) {
		return false
	}
	if len(f.include) == 0 || matches(f.include, p) {
		return true
	}
	return isDir && mayContain(f.include, p)
}

func marshalLabel(v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func removeAll(dir string) func() {
	return func() { os.RemoveAll(dir) }
}
