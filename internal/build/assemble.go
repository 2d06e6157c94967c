package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/hostfile"
	"github.com/keelos/keel/internal/kmod"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/modindex"
	"github.com/keelos/keel/internal/pkgbuild"
	"github.com/keelos/keel/internal/runtimeconfig"
	"github.com/keelos/keel/internal/sbom"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// ErrNotImplemented marks a feature whose issue has not landed.
var ErrNotImplemented = errors.New("not implemented yet")

// defaultModules are loaded whenever the kernel has them: what any boot
// under a hypervisor needs, the overlay used by writable containers, and
// the power button init watches for a clean power-off through evdev:
// ACPI's, or a device tree's gpio-keys (arm64 boards, and QEMU's virt
// machine under U-Boot, which passes a device tree instead of ACPI).
var defaultModules = []string{
	"virtio_pci", "virtio_mmio", "virtio_net", "virtio_blk", "virtio_console", "virtio_rng", "virtio_scsi",
	"overlay", "button", "gpio_keys", "evdev", "af_packet",
}

type builder struct {
	spec     *spec.Spec
	opts     Options
	store    *fstree.Store
	resolver *source.Resolver
	packages *pkgbuild.Builder
	epoch    time.Time
	trees    map[string]*fstree.Tree // image digest → its flattened tree
	modules  *modindex.Index         // kernels' module indexes, in the cache
	stage    string                  // the staging directory outputs are written to
}

// system is one architecture's assembled image before it is written out.
type system struct {
	arch    string
	root    *fstree.Tree
	kernel  []byte
	cmdline kernelCmdline
	sbom    []byte       // SPDX JSON, also at layout.SBOM
	ktree   *fstree.Tree // the kernel image's files (device trees for rpi)
	// With the root on disk (rootfs.go): the initramfs's own tree and
	// the root partition's image.
	initrdRoot *fstree.Tree
	rootImage  *rootImage
}

// logf reports a step of the build: on Progress (the CLI's stderr) when
// set, so a long build shows what it is doing and what it wrote, with
// sizes; else in the log.
func (b *builder) logf(format string, args ...any) {
	b.opts.progress(fmt.Sprintf(format, args...))
}

func (b *builder) buildArch(ctx context.Context, arch string) ([]Output, []fstree.Entry, error) {
	sys, err := b.assemble(ctx, arch)
	if err != nil {
		return nil, nil, err
	}
	defer sys.rootImage.close()
	outs, err := b.writeOutputs(ctx, sys)
	if err != nil {
		return nil, nil, err
	}
	var root []fstree.Entry
	for _, e := range sys.root.Entries() {
		root = append(root, *e)
	}
	return outs, root, nil
}

// tree returns the flattened file tree of an image, built once per digest.
func (b *builder) tree(ctx context.Context, img v1.Image) (*fstree.Tree, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if t, ok := b.trees[d.String()]; ok {
		return t, nil
	}
	t := fstree.New(b.store)
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d, err)
		}
		err = t.ApplyTar(ctxio.Reader(ctx, rc), fstree.ApplyOptions{})
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d, err)
		}
	}
	b.trees[d.String()] = t
	return t, nil
}

func (b *builder) image(ctx context.Context, ref spec.ImageRef, arch, what string) (v1.Image, *fstree.Tree, error) {
	img, _, err := b.resolve(ctx, ref, arch, what)
	if err != nil {
		return nil, nil, err
	}
	t, err := b.tree(ctx, img)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: image %s: %w", what, ref.Ref, err)
	}
	return img, t, nil
}

// resolve returns an image and where it came from.
func (b *builder) resolve(ctx context.Context, ref spec.ImageRef, arch, what string) (v1.Image, source.Origin, error) {
	b.logf("%s: %s: resolving %s", arch, what, ref.Ref)
	img, origin, err := b.resolver.Resolve(ctx, ref, arch)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: image %s: %w", what, ref.Ref, err)
	}
	return img, origin, nil
}

func (b *builder) assemble(ctx context.Context, arch string) (*system, error) {
	s := b.spec
	root := fstree.New(b.store)
	m := &bom{}
	for _, ref := range s.Init {
		img, t, err := b.image(ctx, ref, arch, "init")
		if err != nil {
			return nil, err
		}
		if err := m.recordImage("init", "init", ref, img); err != nil {
			return nil, err
		}
		if err := root.Merge(t); err != nil {
			return nil, fmt.Errorf("init image %s: %w", ref.Ref, err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", layout.LogDir, layout.KeelDir, layout.ContainersDir} {
		if err := addDir(root, d, 0o755); err != nil {
			return nil, err
		}
	}

	// The kernel opens /dev/console for init before devtmpfs is mounted;
	// without the node init starts with no stdin, stdout or stderr.
	if err := root.Add(fstree.Entry{Path: layout.Console, Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1}); err != nil {
		return nil, err
	}

	kimg, ktree, err := b.image(ctx, s.Kernel.Image, arch, "kernel")
	if err != nil {
		return nil, err
	}
	if err := m.recordImage("kernel", "kernel", s.Kernel.Image, kimg); err != nil {
		return nil, err
	}
	kernel, version, err := findKernel(ktree)
	if err != nil {
		return nil, fmt.Errorf("kernel image %s: %w", s.Kernel.Image.Ref, err)
	}
	if err := b.addModules(ctx, root, ktree, version); err != nil {
		return nil, fmt.Errorf("kernel image %s: %w", s.Kernel.Image.Ref, err)
	}

	kinds := []struct {
		kind, dir string
		list      []spec.Container
		ordered   bool
	}{
		{layout.KindOnboot, layout.OnbootDir, s.Onboot, true},
		{layout.KindService, layout.ServicesDir, s.Services, false},
		{layout.KindOnshutdown, layout.OnshutdownDir, s.Onshutdown, true},
	}
	for _, k := range kinds {
		for i, c := range k.list {
			dir := path.Join(k.dir, c.Name)
			if k.ordered {
				dir = path.Join(k.dir, layout.OrderedBundle(i, c.Name))
			}
			if err := b.addContainer(ctx, root, m, arch, k.kind, dir, c); err != nil {
				return nil, fmt.Errorf("%s %q: %w", k.kind, c.Name, err)
			}
		}
	}

	if err := b.addVolumes(ctx, root, arch); err != nil {
		return nil, err
	}
	for _, f := range s.Files {
		if err := addFile(ctx, root, f); err != nil {
			return nil, fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	resolved, err := spec.Marshal(s)
	if err != nil {
		return nil, err
	}
	if err := root.AddFile(sbom.SpecPath, 0o644, 0, 0, bytes.NewReader(resolved)); err != nil {
		return nil, err
	}
	doc, err := b.addProvenance(ctx, root, arch, version, kernel, resolved, m)
	if err != nil {
		return nil, err
	}
	img, initrdRoot, err := b.writeRootImage(ctx, arch, root)
	if err != nil {
		return nil, err
	}
	return &system{
		arch: arch, root: root, kernel: kernel, sbom: doc, ktree: ktree,
		initrdRoot: initrdRoot, rootImage: img,
		cmdline: newKernelCmdline(s.Kernel.Cmdline, arch, img.cmdline()...),
	}, nil
}

// findKernel finds the kernel in a kernel image: /kernel (LinuxKit's
// layout) or a Debian /boot/vmlinuz-VERSION.
func findKernel(t *fstree.Tree) ([]byte, string, error) {
	var version string
	var entry *fstree.Entry
	for _, e := range t.Entries() {
		if e.Mode.IsRegular() && strings.HasPrefix(e.Path, "boot/vmlinuz-") {
			entry, version = e, strings.TrimPrefix(e.Path, "boot/vmlinuz-")
		}
	}
	if e, ok := t.Get("kernel"); ok && e.Mode.IsRegular() {
		entry = e
	}
	if entry == nil {
		return nil, "", fmt.Errorf("no kernel: neither /kernel nor /boot/vmlinuz-* is in the image")
	}
	if version == "" {
		for _, e := range t.Entries() {
			if dir, rest, ok := strings.Cut(e.Path, "/"); ok && dir == "lib" && strings.HasPrefix(rest, "modules/") {
				parts := strings.Split(rest, "/")
				if len(parts) >= 2 {
					version = parts[1]
					break
				}
			}
		}
	}
	rc, err := t.Open(entry)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, "", err
	}
	return data, version, nil
}

// addModules puts the modules the spec asks for (and the default ones
// this kernel has), with their dependencies, into the root and writes the
// load order to layout.Modules.
func (b *builder) addModules(ctx context.Context, root, ktree *fstree.Tree, version string) error {
	prefix := "lib/modules/" + version + "/"
	// Debian's kernels from trixie on ship their modules under /usr
	// (merged /usr); in the image they stay at /lib/modules.
	src := prefix
	if _, ok := ktree.Get(strings.TrimSuffix(prefix, "/")); !ok {
		if _, ok := ktree.Get("usr/" + strings.TrimSuffix(prefix, "/")); ok {
			src = "usr/" + prefix
		}
	}
	set := kmod.Set{Modules: map[string]kmod.Module{}, Builtin: map[string]bool{}}
	var files []modindex.File
	entries := map[string]*fstree.Entry{} // by path in the module tree
	for _, e := range ktree.Entries() {
		if !strings.HasPrefix(e.Path, src) || !e.Mode.IsRegular() {
			continue
		}
		rel := strings.TrimPrefix(e.Path, src)
		if rel == "modules.builtin" {
			data, err := readEntry(ktree, e)
			if err != nil {
				return err
			}
			set.Builtin = kmod.ParseBuiltin(data)
			continue
		}
		if kmod.IsModuleFile(rel) {
			files = append(files, modindex.File{Path: rel, Digest: e.Digest})
			entries[rel] = e
		}
	}
	// Only a kernel seen for the first time has its modules read (and
	// decompressed); the selected ones are copied as they are.
	mods, err := b.modules.Modules(ctx, files, func(f modindex.File) (io.ReadCloser, error) {
		return ktree.Open(entries[f.Path])
	}, func(msg string) { b.logf("kernel: %s", msg) })
	if err != nil {
		return err
	}
	byName := map[string]*fstree.Entry{}
	for _, m := range mods {
		set.Modules[m.Name] = m
		byName[m.Name] = entries[m.Path]
	}
	if version == "" || len(set.Modules) == 0 && len(b.spec.Kernel.Modules) > 0 {
		return fmt.Errorf("no module tree under /lib/modules")
	}
	rootRequired, rootOptional := b.rootModules()
	volRequired, volOptional := volumeModules(b.spec.Volumes)
	order, err := set.Order(slices.Concat(b.spec.Kernel.Modules, rootRequired, volRequired), slices.Concat(defaultModules, rootOptional, volOptional))
	if err != nil {
		return err
	}
	var list bytes.Buffer
	for _, m := range order {
		e := *byName[m.Name]
		e.Path = prefix + strings.TrimPrefix(e.Path, src)
		if err := root.Add(e); err != nil {
			return err
		}
		fmt.Fprintf(&list, "/%s\n", e.Path)
	}
	for _, keep := range []string{"modules.builtin", "modules.order"} {
		if e, ok := ktree.Get(src + keep); ok {
			c := *e
			c.Path = prefix + keep
			if err := root.Add(c); err != nil {
				return err
			}
		}
	}
	return root.AddFile(layout.Modules, 0o644, 0, 0, &list)
}

func readEntry(t *fstree.Tree, e *fstree.Entry) ([]byte, error) {
	rc, err := t.Open(e)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// addContainer places one container's bundle in dir: its image's tree as
// layout.BundleRootfs and the OCI document (layout.BundleConfig) from
// image config ← label ← spec entry, checked by effectiveConfig.
func (b *builder) addContainer(ctx context.Context, root *fstree.Tree, m *bom, arch, kind, dir string, c spec.Container) error {
	img, origin, err := b.resolve(ctx, c.Image, arch, kind+" "+c.Name)
	if err != nil {
		return err
	}
	if err := m.recordImage(kind, c.Name, c.Image, img); err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	cc, err := effectiveConfig(kind, c, origin, cf, b.spec.Volumes, b.opts.Specs)
	if err != nil {
		return err
	}
	if err := addSeccomp(root, dir, arch, c, cc.oci); err != nil {
		return err
	}
	cfgJSON, err := runtimeconfig.Marshal(cc.oci)
	if err != nil {
		return err
	}
	t, err := b.tree(ctx, img)
	if err != nil {
		return fmt.Errorf("image %s: %w", c.Image.Ref, err)
	}
	rootfs := path.Join(dir, layout.BundleRootfs)
	if err := root.Graft(rootfs, t); err != nil {
		return err
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc"} {
		if _, ok := t.Get(d); !ok {
			if err := addDir(root, path.Join(rootfs, d), 0o755); err != nil {
				return err
			}
		}
	}
	return root.AddFile(path.Join(dir, layout.BundleConfig), 0o644, 0, 0, bytes.NewReader(cfgJSON))
}

func addDir(t *fstree.Tree, p string, mode fs.FileMode) error {
	if e, ok := t.Get(p); ok && e.Mode.IsDir() {
		return nil
	}
	return t.Add(fstree.Entry{Path: p, Mode: fs.ModeDir | mode})
}

// addFile places one [[file]] of the spec.
func addFile(ctx context.Context, t *fstree.Tree, f spec.File) error {
	p := strings.TrimPrefix(path.Clean(f.Path), "/")
	var mode fs.FileMode = 0o644
	if f.Directory {
		mode = 0o755
	}
	mode = f.Mode.Or(mode)
	switch {
	case f.Directory:
		return t.Add(fstree.Entry{Path: p, Mode: fs.ModeDir | mode, UID: int(f.UID), GID: int(f.GID)})
	case f.Symlink != "":
		return t.Add(fstree.Entry{Path: p, Mode: fs.ModeSymlink | 0o777, UID: int(f.UID), GID: int(f.GID), Linkname: f.Symlink})
	case f.Contents != nil:
		return t.AddFile(p, mode, int(f.UID), int(f.GID), strings.NewReader(*f.Contents))
	case f.Source != "":
		src, err := hostfile.Open(ctx, f.Dir, f.Source)
		if err != nil {
			return fmt.Errorf("source %w", err)
		}
		defer src.Close()
		return t.AddFile(p, mode, int(f.UID), int(f.GID), src)
	}
	return fmt.Errorf("nothing to place: set contents, source, symlink or directory")
}

// sortedKeys is used where maps must not leak their order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
