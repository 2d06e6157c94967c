package pkgbuild

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/hostfile"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/spec"
)

// part is one layer of a package image.
type part struct {
	what string
	tree *fstree.Tree
}

// assemble builds p's image. The returned cleanup removes the temporary
// files the image's layers are read from, so it must run only after the
// image has been copied (into the cache).
func (b *Builder) assemble(ctx context.Context, p *plan) (v1.Image, func(), error) {
	work, err := os.MkdirTemp("", "keel-pkgbuild-")
	if err != nil {
		return nil, func() {}, err
	}
	cleanup := removeAll(work)
	store, err := fstree.NewStore(filepath.Join(work, "store"))
	if err != nil {
		return nil, cleanup, err
	}
	var parts []part
	if p.pkg.Build != nil {
		t, what, err := b.buildSteps(ctx, p, store, work)
		if err != nil {
			return nil, cleanup, err
		}
		parts = []part{{what, t}}
	} else if parts, err = b.parts(ctx, p, store, work); err != nil {
		return nil, cleanup, err
	}
	setup, skipped, err := setupLayer(store, parts, p.pkg, p.arch)
	if err != nil {
		return nil, cleanup, err
	}
	for _, s := range skipped {
		b.progress("%s (%s): %v", p.pkg.Name, p.arch, s)
	}
	if setup != nil {
		parts = append(parts, part{"accounts, sysusers.d and tmpfiles.d", setup})
	}
	img, err := b.image(p, parts, work)
	return img, cleanup, err
}

// parts builds the package's own [debian], [[go]] and [[file]] layers.
func (b *Builder) parts(ctx context.Context, p *plan, store *fstree.Store, work string) ([]part, error) {
	var parts []part
	if p.pkg.Debian != nil {
		t, err := b.debianTree(ctx, p, store)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part{fmt.Sprintf("debian: %d packages", len(p.debs)), t})
	}
	if len(p.pkg.Go) > 0 {
		t := fstree.New(store)
		for i, g := range p.pkg.Go {
			b.progress("%s (%s): go build %s", p.pkg.Name, p.arch, g.Main)
			bin := filepath.Join(work, fmt.Sprintf("go-%d", i))
			if err := b.goBuild(ctx, p.pkg.Dir, p.arch, g, bin); err != nil {
				return nil, err
			}
			if err := addHostFile(t, g.Dest, bin, 0o755, 0, 0); err != nil {
				return nil, err
			}
		}
		parts = append(parts, part{"go: " + goMains(p), t})
	}
	if len(p.pkg.Files) > 0 {
		t := fstree.New(store)
		for _, f := range p.pkg.Files {
			if err := addSpecFile(ctx, t, f); err != nil {
				return nil, err
			}
		}
		parts = append(parts, part{fmt.Sprintf("files: %d", len(p.pkg.Files)), t})
	}
	return parts, nil
}

// image makes p's image from its layers, with the package's labels and
// runtime defaults.
func (b *Builder) image(p *plan, parts []part, work string) (v1.Image, error) {
	var img v1.Image = empty.Image
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: b.epoch()}
	for i, pt := range parts {
		layerPath := filepath.Join(work, fmt.Sprintf("layer-%d.tar.gz", i))
		if err := writeLayer(pt.tree, layerPath, b); err != nil {
			return nil, fmt.Errorf("writing %s layer: %w", pt.what, err)
		}
		layer, err := tarball.LayerFromFile(layerPath, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: "keel pkg build: " + pt.what},
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", p.arch
	if p.arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = created
	cfgLabel, err := marshalLabel(p.pkg.Config)
	if err != nil {
		return nil, err
	}
	cf.Config.Labels = map[string]string{imagelabel.Config: cfgLabel, imagelabel.Package: p.pkg.Name}
	if p.pkg.Debian != nil && p.debsInImage() {
		debLabel, err := marshalLabel(debInfos(p.debs))
		if err != nil {
			return nil, err
		}
		cf.Config.Labels[imagelabel.Debian] = debLabel
	}
	c := p.pkg.Config
	if len(c.Command) > 0 {
		cf.Config.Entrypoint = c.Command
	}
	cf.Config.Env = c.Env
	if c.Cwd != nil {
		cf.Config.WorkingDir = *c.Cwd
	}
	return mutate.ConfigFile(img, cf)
}

func goMains(p *plan) string {
	var mains []string
	for _, g := range p.pkg.Go {
		mains = append(mains, g.Main)
	}
	return strings.Join(mains, " ")
}

// writeLayer writes t as a deterministic, gzipped tar with the epoch as
// mtime. Compressing here, once, spares go-containerregistry compressing
// the layer again each time it is read (for its digest, then to cache).
func writeLayer(t *fstree.Tree, dst string, b *Builder) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	// The gzip header carries no name and a zero mtime: same tar, same bytes.
	zw := gzip.NewWriter(bw)
	err = t.WriteTar(zw, b.epoch())
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

// debianTree unpacks p's Debian packages, in name order, into one tree
// and applies the path filters.
func (b *Builder) debianTree(ctx context.Context, p *plan, store *fstree.Store) (*fstree.Tree, error) {
	t := fstree.New(store)
	if b.Debian == nil && len(p.debs) > 0 {
		return nil, fmt.Errorf("fetching Debian packages needs a Debian mirror: none found in the apt configuration; set %s", debian.MirrorEnv)
	}
	for _, d := range p.debs {
		b.progress("%s (%s): fetch %s %s", p.pkg.Name, p.arch, d.Name, d.Version)
		deb, err := b.Debian.Fetch(ctx, d)
		if err != nil {
			return nil, err
		}
		if err := applyDeb(t, deb); err != nil {
			return nil, fmt.Errorf("unpacking %s %s: %w", d.Name, d.Version, err)
		}
	}
	f := newPathFilter(p.pkg.Debian)
	t.Filter(func(e *fstree.Entry) bool { return f.keep("/"+e.Path, e.Mode.IsDir()) })
	return t, nil
}

func applyDeb(t *fstree.Tree, debPath string) error {
	rc, err := debian.DataTar(debPath)
	if err != nil {
		return err
	}
	defer rc.Close()
	return t.ApplyTar(rc, fstree.ApplyOptions{})
}

// checkSources opens every [[file]] source of a package, as hostfile
// allows, and reports the first it refuses.
func checkSources(ctx context.Context, files []spec.File) error {
	for _, f := range files {
		if f.Source == "" {
			continue
		}
		src, err := hostfile.Open(ctx, f.Dir, f.Source)
		if err != nil {
			return sourceError(f, err)
		}
		src.Close()
	}
	return nil
}

// sourceError names the package file and the entry whose source failed.
func sourceError(f spec.File, err error) error {
	return fmt.Errorf("%s: [[file]] %s: source %w", f.Origin, f.Path, err)
}

// addHostFile adds a file the build itself made (a Go binary).
func addHostFile(t *fstree.Tree, dest, src string, mode fs.FileMode, uid, gid int) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return t.AddFile(dest, mode, uid, gid, f)
}

// addSpecFile places one [[file]] entry.
func addSpecFile(ctx context.Context, t *fstree.Tree, f spec.File) error {
	uid, gid := int(f.UID), int(f.GID)
	switch {
	case f.Directory:
		return t.AddDir(f.Path, f.Mode.Or(0o755), uid, gid)
	case f.Symlink != "":
		return t.AddSymlink(f.Path, f.Symlink, uid, gid)
	}
	mode := f.Mode.Or(0o644)
	switch {
	case f.Contents != nil:
		return t.AddFile(f.Path, mode, uid, gid, strings.NewReader(*f.Contents))
	case f.Source != "":
		src, err := hostfile.Open(ctx, f.Dir, f.Source)
		if err != nil {
			return sourceError(f, err)
		}
		defer src.Close()
		return t.AddFile(f.Path, mode, uid, gid, src)
	}
	return fmt.Errorf("[[file]] %s: needs contents, source, symlink or directory", f.Path)
}
