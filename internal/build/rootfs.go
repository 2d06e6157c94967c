package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/disk"
	"github.com/keelos/keel/internal/erofs"
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/kmod"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/sbom"
	"github.com/keelos/keel/internal/spec"
	"github.com/keelos/keel/internal/squashfs"
)

// A root "on disk" ([output] root = "squashfs" or "erofs") is a read-only
// partition of the disk formats holding the whole system tree. The
// initramfs then holds only init and the modules it needs to find and
// mount that partition; the kernel command line names the partition
// (keel.root=PARTLABEL=…) and its file system (keel.rootfstype=…), and
// init mounts it with a tmpfs overlay and switches into it. The image is
// written when the system is assembled, before any output, as the
// command line names it by its hash.

// diskRootModules are loaded, when the kernel has them, for a root on
// disk, besides its file system and overlay (rootModules): the storage
// drivers of the machines the disk formats are for (QEMU's and the KVM
// clouds' virtio, EC2 Nitro's NVMe, SATA). Of the image's modules only
// these, the disk and file system drivers (storageModule) and their
// dependencies go into the initramfs. Xen's and Hyper-V's drivers fail
// with ENODEV on every other machine, so a spec for those adds them
// (xen_blkfront, hv_storvsc) to [kernel] modules.
var diskRootModules = []string{
	"virtio_pci", "virtio_mmio", "virtio_blk", "virtio_scsi", "sd_mod",
	"nvme", "ahci",
}

// initrdPowerModules also stay in the initramfs of a root on disk: with
// them init, which goes on from the initramfs when the root is not found,
// still powers off when the hypervisor presses the power button.
var initrdPowerModules = []string{"button", "evdev"}

// defaultInitrdMemory and defaultInitrdPercent are [output] memory and
// initrd-max-percent when unset: an initrd root may take half of 1 GiB.
const (
	defaultInitrdMemory  = 1 << 30
	defaultInitrdPercent = 50
)

// rootOnDisk reports whether the spec's root is a partition of its own.
func rootOnDisk(s *spec.Spec) bool {
	return s.Output.Root == "squashfs" || s.Output.Root == "erofs"
}

// rootModules are the module names addModules loads besides the spec's
// and the default ones: required (the root's file system: the root cannot
// be mounted without it) and optional (the storage drivers).
func (b *builder) rootModules() (required, optional []string) {
	if !rootOnDisk(b.spec) {
		return nil, nil
	}
	return []string{b.spec.Output.Root, "overlay"}, diskRootModules
}

// rootImage is the system tree written as a file system image, the
// content of the root partition of every disk format of one architecture.
type rootImage struct {
	f      *os.File
	size   int64
	fstype string // squashfs or erofs
	label  string // the GPT partition name, from the image's hash
	typ    gpt.Type
}

// partition is the root partition for a disk plan; every disk of the
// build reads the same image file.
func (r *rootImage) partition() disk.Partition {
	return disk.Partition{Name: r.label, Type: r.typ, Size: r.size, Content: r.f}
}

// rootPartitions are the extra partitions of sys's disks: the root
// partition when the root is on disk.
func (sys *system) rootPartitions() []disk.Partition {
	if sys.rootImage == nil {
		return nil
	}
	return []disk.Partition{sys.rootImage.partition()}
}

// bootRoot is the tree the initramfs is made of.
func (sys *system) bootRoot() *fstree.Tree {
	if sys.initrdRoot != nil {
		return sys.initrdRoot
	}
	return sys.root
}

// needsRootImage reports whether the root is on disk and a format asked
// for is made from a disk, which carries it.
func (b *builder) needsRootImage() bool {
	return rootOnDisk(b.spec) && slices.ContainsFunc(b.spec.Output.Formats, func(name string) bool {
		f, ok := format.Lookup(name)
		return ok && f.From.Disk()
	})
}

// writeRootImage writes the root partition's image when the root is on
// disk, in the staging directory, and returns it with what boots from
// it, the initramfs tree of init and the root's modules; nil when the
// root is not on disk. The caller removes the image (close).
func (b *builder) writeRootImage(ctx context.Context, arch string, root *fstree.Tree) (*rootImage, *fstree.Tree, error) {
	if !b.needsRootImage() {
		return nil, nil, nil
	}
	fstype := b.spec.Output.Root
	f, err := os.CreateTemp(b.stage, "."+b.spec.Name+"-"+arch+"-root.*.tmp")
	if err != nil {
		return nil, nil, fmt.Errorf("root image: %w", err)
	}
	img := &rootImage{f: f, fstype: fstype}
	ok := false
	defer func() {
		if !ok {
			img.close()
		}
	}()
	b.logf("%s: writing %s root", arch, fstype)
	start := time.Now()
	switch fstype {
	case "squashfs":
		img.size, err = squashfs.Write(ctxio.WriteSeeker(ctx, f), root, squashfs.Options{Epoch: b.epoch.Unix()})
	case "erofs":
		img.size, err = erofs.Write(ctxio.WriterAt(ctx, f), root, erofs.Options{Epoch: b.epoch.Unix(), UUID: treeID(root), Label: "keel-root"})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s root: %w", fstype, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, img.size)); err != nil {
		return nil, nil, fmt.Errorf("%s root: %w", fstype, err)
	}
	sum := h.Sum(nil)
	img.label = fmt.Sprintf("keel-root-%x", sum[:8])
	img.typ = disk.TypeLinuxRootX86_64
	if arch == "arm64" {
		img.typ = disk.TypeLinuxRootArm64
	}
	b.logf("%s: %s root: %s of %s files in %.1fs", arch, fstype, humanSize(img.size), humanSize(root.Size()), time.Since(start).Seconds())

	boot, err := initrdForDiskRoot(root)
	if err != nil {
		return nil, nil, fmt.Errorf("%s root: initramfs: %w", fstype, err)
	}
	ok = true
	return img, boot, nil
}

// cmdline are the kernel command line parameters that make init mount
// the root partition; none without one.
func (r *rootImage) cmdline() []string {
	if r == nil {
		return nil
	}
	return []string{layout.CmdlineRoot + "=PARTLABEL=" + r.label, layout.CmdlineRootFSType + "=" + r.fstype}
}

// close removes the image file.
func (r *rootImage) close() {
	if r != nil {
		r.f.Close()
		os.Remove(r.f.Name())
	}
}

// treeID is a UUID that follows from a tree's content, for the file
// systems that carry one.
func treeID(t *fstree.Tree) [16]byte {
	h := sha256.New()
	for _, e := range t.Entries() {
		fmt.Fprintf(h, "%s\x00%o\x00%d:%d\x00%s\x00%s\x00%d,%d\n", e.Path, uint32(e.Mode), e.UID, e.GID, e.Digest, e.Linkname, e.Devmajor, e.Devminor)
	}
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// initrdForDiskRoot is the initramfs of a root on disk: /init, the
// directories init mounts on, /dev/console, the build records of
// /etc/keel, and of the image's modules those that find and mount the
// root (with their dependencies), listed in layout.Modules in the image's
// load order. The root's own list, loaded after the switch, names them
// all.
func initrdForDiskRoot(root *fstree.Tree) (*fstree.Tree, error) {
	t := fstree.New(root.Store())
	e, ok := root.Get(layout.Init)
	if !ok || !e.Mode.IsRegular() {
		return nil, fmt.Errorf("no /%s in the image", layout.Init)
	}
	if err := t.Add(*e); err != nil {
		return nil, err
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", layout.KeelDir} {
		if err := addDir(t, d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.Add(fstree.Entry{Path: layout.Console, Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1}); err != nil {
		return nil, err
	}
	// The resolved spec, provenance and SBOM are small, and with them
	// `keel inspect` reads a disk image through its UKI's initramfs as it
	// does for an initrd root, with no squashfs or erofs reader.
	for _, p := range []string{sbom.SpecPath, sbom.ProvenancePath, sbom.SBOMPath} {
		if e, ok := root.Get(p); ok {
			if err := t.Add(*e); err != nil {
				return nil, err
			}
		}
	}
	le, ok := root.Get(layout.Modules)
	if !ok {
		return t, nil // a kernel with everything built in
	}
	list, err := readEntry(root, le)
	if err != nil {
		return nil, err
	}
	// The list is in load order, each module after its dependencies, so
	// walking it backwards sees every module before what it depends on.
	var paths []string
	mods := map[string]kmod.Module{}
	for _, line := range strings.Split(string(list), "\n") {
		p := strings.TrimPrefix(strings.TrimSpace(line), "/")
		if p == "" {
			continue
		}
		me, ok := root.Get(p)
		if !ok {
			return nil, fmt.Errorf("/%s names /%s, which is not in the image", layout.Modules, p)
		}
		rc, err := root.Open(me)
		if err != nil {
			return nil, err
		}
		m, err := kmod.Parse(p, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
		mods[p] = m
	}
	need := map[string]bool{}
	for _, n := range slices.Concat(diskRootModules, initrdPowerModules) {
		need[kmod.Canonical(n)] = true
	}
	keep := make([]bool, len(paths))
	for i := len(paths) - 1; i >= 0; i-- {
		m := mods[paths[i]]
		if need[m.Name] || storageModule(paths[i]) {
			keep[i] = true
			for _, d := range m.Depends {
				need[d] = true
			}
		}
	}
	var out bytes.Buffer
	for i, p := range paths {
		if !keep[i] {
			continue
		}
		me, _ := root.Get(p)
		if err := t.Add(*me); err != nil {
			return nil, err
		}
		fmt.Fprintf(&out, "/%s\n", p)
	}
	return t, t.AddFile(layout.Modules, 0o644, 0, 0, &out)
}

// storageModule reports whether a module file is a disk or file system
// driver, which the initramfs of a root on disk keeps: a spec that adds,
// say, xen_blkfront to [kernel] modules needs it to find the root.
func storageModule(p string) bool {
	for _, dir := range []string{"/drivers/block/", "/drivers/scsi/", "/drivers/ata/", "/drivers/nvme/", "/drivers/mmc/", "/drivers/md/", "/fs/"} {
		if strings.Contains(p, dir) {
			return true
		}
	}
	return false
}

// checkInitrdSize refuses an initrd root that would take more than the
// configured share of the target machine's memory: the compressed
// archive and the unpacked tree are both in RAM while it boots, and the
// unpacked tree stays there.
func (b *builder) checkInitrdSize(sys *system, initrdSize int) error {
	if rootOnDisk(b.spec) {
		return nil
	}
	mem := b.spec.Output.Memory.Bytes()
	if mem == 0 {
		mem = defaultInitrdMemory
	}
	percent := b.spec.Output.InitrdMaxPercent
	if percent == 0 {
		percent = defaultInitrdPercent
	}
	unpacked := sys.root.Size()
	need := unpacked + int64(initrdSize)
	if limit := mem / 100 * int64(percent); need > limit {
		return fmt.Errorf("initrd root: %s (%s unpacked, %s compressed) is more than %d%% of the target's %s of memory ([output] memory, initrd-max-percent): "+
			"set [output] root = \"squashfs\" (or \"erofs\") to keep the root on disk, or raise [output] memory if the machines have more",
			humanSize(need), humanSize(unpacked), humanSize(int64(initrdSize)), percent, humanSize(mem))
	}
	return nil
}
