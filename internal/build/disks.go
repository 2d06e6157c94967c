package build

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/disk"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/gnutar"
	"github.com/keelos/keel/internal/ova"
	"github.com/keelos/keel/internal/qcow2"
	"github.com/keelos/keel/internal/vhd"
	"github.com/keelos/keel/internal/vmdk"
)

// The disk formats, by the disk they are made from. The VM and cloud
// formats are the disk for every machine: on amd64 it boots through EFI
// and through a BIOS (Azure generation 1, Compute Engine and EC2 without
// UEFI, VMware's default), elsewhere through EFI.
var (
	efiFormats   = []string{"raw-efi", "qcow2-efi"}
	biosFormats  = []string{"raw-bios", "qcow2-bios"}
	vmFormats    = []string{"raw", "vhd", "dynamic-vhd", "vhdx", "vmdk", "ova"}
	cloudFormats = []string{"gce", "aws"}
	diskFormats  = slices.Concat(efiFormats, biosFormats, vmFormats, cloudFormats)
)

const gib = 1 << 30

// bootDisk is a GPT disk the disk formats are made from: a FAT boot
// partition (the ESP, holding the UKI at the removable-media path, or the
// kernel and initramfs for a BIOS-only disk) and, when GRUB boots it from
// a BIOS, a BIOS boot partition with GRUB's core image.
type bootDisk struct {
	opts disk.EFIOptions
	name string    // NAME-ARCH, for ids derived from content
	grub *grubBoot // nil: no BIOS boot path
}

// efiDisk boots the UKI through EFI only.
func efiDisk(bootName string, ukiData []byte, size int64, name string, epoch time.Time) bootDisk {
	return bootDisk{name: name, opts: disk.EFIOptions{
		Seed:     seed(name, ukiData),
		ESPFiles: fstree.MemFiles{{Path: bootName, Data: ukiData}},
		ESPLabel: "ESP",
		Epoch:    epoch,
		Size:     size,
	}}
}

// write writes the raw disk into f. Its content (the boot partition's
// files, the root image) stops being read once ctx is done, which stops
// the writer.
func (d bootDisk) write(ctx context.Context, f *os.File) error {
	opts := d.opts
	opts.ESPFiles = ctxSource{ctx, opts.ESPFiles}
	opts.Partitions = slices.Clone(opts.Partitions)
	for i, p := range opts.Partitions {
		if p.Content != nil {
			opts.Partitions[i].Content = ctxio.ReaderAt(ctx, p.Content)
		}
	}
	if err := disk.WriteEFI(f, opts); err != nil {
		return err
	}
	if d.grub == nil {
		return nil
	}
	return d.grub.install(f, d.opts)
}

// cloud is the disk as GCE and EBS take it: a whole number of GiB, which
// both platforms count disks in.
func (d bootDisk) cloud() (bootDisk, error) {
	l, err := disk.Plan(d.opts)
	if err != nil {
		return bootDisk{}, err
	}
	d.opts.Size = (l.Size + gib - 1) / gib * gib
	return d, nil
}

// converter writes one format from the raw disk.
type converter struct {
	format, suffix string
	write          func(w io.Writer, src io.ReaderAt, size int64) error
}

// diskSet is one raw disk and the formats made from it.
type diskSet struct {
	raw, rawSuffix string // the raw disk's own format
	disk           bootDisk
	converters     []converter
}

func (s diskSet) formats() []string {
	out := []string{s.raw}
	for _, c := range s.converters {
		out = append(out, c.format)
	}
	if s.raw == "raw" {
		out = append(out, "ova")
	}
	return out
}

// vmConverters are the formats that re-encode the disk for every machine.
func (b *builder) vmConverters(d bootDisk) []converter {
	id := contentID(d.opts.Seed)
	name := d.name
	vhdOpts := vhd.Options{UUID: id, Mtime: b.epoch}
	return []converter{
		{"vhd", ".vhd", func(w io.Writer, src io.ReaderAt, size int64) error { return vhd.WriteFixed(w, src, size, vhdOpts) }},
		{"dynamic-vhd", "-dynamic.vhd", func(w io.Writer, src io.ReaderAt, size int64) error {
			return vhd.WriteDynamic(w, src, size, vhdOpts)
		}},
		{"vhdx", ".vhdx", func(w io.Writer, src io.ReaderAt, size int64) error { return vhd.WriteVHDX(w, src, size, vhdOpts) }},
		{"vmdk", ".vmdk", func(w io.Writer, src io.ReaderAt, size int64) error {
			return writeVMDK(w, src, size, id, filepath.Base(name)+".vmdk")
		}},
	}
}

// writeVMDK writes a stream-optimized VMDK whose descriptor names the
// file it will be (readers such as libvmdk open the extent by that name).
func writeVMDK(w io.Writer, src io.ReaderAt, size int64, id [16]byte, fileName string) error {
	return vmdk.WriteStreamOptimized(w, src, size, vmdk.Options{CID: binary.BigEndian.Uint32(id[:4]) % 0xfffffffe, FileName: fileName})
}

// contentID is a stable 16-byte id for a disk, from the seed its GPT GUIDs
// come from (a hash of its name and content): the formats that carry a
// disk UUID get one that follows from the image, never a random one.
func contentID(seed string) [16]byte {
	h := sha256.Sum256([]byte("keel-disk-id\x00" + seed))
	var id [16]byte
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// writeDisks writes every disk format asked for. Each raw disk is written
// once (kept as its raw output or as a temporary file) and converted; gce
// and aws get their own whole-GiB disk unless the raw one already is.
func (b *builder) writeDisks(ctx context.Context, sys *system, base, bootName string, ukiData, initrd []byte, has func(...string) bool, record func(format, path string, size int64)) error {
	size := b.spec.Output.Size.Bytes() // 0: fit
	name := b.spec.Name + "-" + sys.arch
	efi := efiDisk(bootName, ukiData, size, name, b.epoch)
	efi.opts.Partitions = slices.Concat(efi.opts.Partitions, sys.rootPartitions(), volumePartitions(b.spec.Volumes))
	vm := efi
	var bios *bootDisk
	if sys.arch == "amd64" && has(slices.Concat(biosFormats, vmFormats, cloudFormats)...) {
		grub, err := b.grubFiles(ctx)
		if err != nil {
			return err
		}
		if vm, err = hybridDisk(efi, bootName, grub, ukiData, sys.cmdline); err != nil {
			return err
		}
		d := biosDisk(grub, sys.kernel, initrd, sys.cmdline, size, name, b.epoch)
		d.opts.Partitions = slices.Concat(d.opts.Partitions, sys.rootPartitions(), volumePartitions(b.spec.Volumes))
		bios = &d
	}
	sets := []diskSet{
		{raw: "raw-efi", rawSuffix: "-efi.raw", disk: efi, converters: []converter{{"qcow2-efi", "-efi.qcow2", qcow2.Write}}},
		{raw: "raw", rawSuffix: ".raw", disk: vm, converters: b.vmConverters(vm)},
	}
	if bios != nil {
		sets = append(sets, diskSet{raw: "raw-bios", rawSuffix: "-bios.raw", disk: *bios, converters: []converter{{"qcow2-bios", "-bios.qcow2", qcow2.Write}}})
	}
	vmPath, vmSize := "", int64(-1)
	for _, set := range sets {
		if !has(set.formats()...) {
			continue
		}
		rawPath, cleanup, rawSize, err := b.rawDisk(ctx, sys.arch, base+set.rawSuffix, has(set.raw), set.disk, record, set.raw)
		if err != nil {
			return err
		}
		defer cleanup()
		if err := b.convertDisk(ctx, sys.arch, base, set, rawPath, rawSize, has, record); err != nil {
			return err
		}
		if set.raw == "raw" {
			vmPath, vmSize = rawPath, rawSize
		}
	}
	if !has(cloudFormats...) {
		return nil
	}
	cloud, err := vm.cloud()
	if err != nil {
		return err
	}
	cloudPath, cloudSize := vmPath, vmSize
	if cloud.opts.Size != vmSize { // also when no raw disk was written
		var done func()
		cloudPath, done, cloudSize, err = b.rawDisk(ctx, sys.arch, base+"-aws.raw", has("aws"), cloud, record, "aws")
		if err != nil {
			return err
		}
		defer done()
	} else if has("aws") {
		// The raw disk is whole GiB already: aws is the same bytes.
		b.logf("%s: writing aws", sys.arch)
		n, err := writeOutput(ctx, base+"-aws.raw", func(f *os.File) error { return cloud.write(ctx, f) })
		if err != nil {
			return err
		}
		record("aws", base+"-aws.raw", n)
	}
	if has("gce") {
		b.logf("%s: writing gce", sys.arch)
		p := base + "-gce.tar.gz"
		n, err := writeOutput(ctx, p, func(f *os.File) error { return writeGCE(ctxio.Writer(ctx, f), cloudPath, cloudSize, b.epoch) })
		if err != nil {
			return err
		}
		record("gce", p, n)
	}
	return nil
}

// convertDisk writes the formats that re-encode the raw disk at rawPath.
func (b *builder) convertDisk(ctx context.Context, arch, base string, set diskSet, rawPath string, rawSize int64, has func(...string) bool, record func(format, path string, size int64)) error {
	f, err := os.Open(rawPath)
	if err != nil {
		return err
	}
	defer f.Close()
	src := ctxio.ReaderAt(ctx, f)
	for _, c := range set.converters {
		if !has(c.format) {
			continue
		}
		p := base + c.suffix
		b.logf("%s: writing %s", arch, c.format)
		n, err := writeOutput(ctx, p, func(f *os.File) error { return c.write(ctxio.Writer(ctx, f), src, rawSize) })
		if err != nil {
			return err
		}
		record(c.format, p, n)
	}
	if set.raw == "raw" && has("ova") {
		b.logf("%s: writing ova", arch)
		return b.writeOVA(ctx, arch, base+".ova", src, rawSize, contentID(set.disk.opts.Seed), record)
	}
	return nil
}

// rawDisk writes the raw disk to path when it is an output (format),
// else to a temporary file next to it that cleanup removes.
func (b *builder) rawDisk(ctx context.Context, arch, path string, keep bool, d bootDisk, record func(format, path string, size int64), format string) (string, func(), int64, error) {
	if keep {
		b.logf("%s: writing %s", arch, format)
	} else {
		path = filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	}
	n, err := writeOutput(ctx, path, func(f *os.File) error { return d.write(ctx, f) })
	if err != nil {
		return "", nil, 0, err
	}
	if keep {
		record(format, path, n)
		return path, func() {}, n, nil
	}
	return path, func() { os.Remove(path) }, n, nil
}

// writeOVA packs a stream-optimized VMDK of the raw disk into an OVA for
// vSphere and VirtualBox: EFI firmware, 2 vCPUs and 2 GiB, which the
// importer can change. The VMDK is written for the OVA (its descriptor
// names the file as the OVA does) and packed from a temporary file.
func (b *builder) writeOVA(ctx context.Context, arch, path string, raw io.ReaderAt, rawSize int64, id [16]byte, record func(format, path string, size int64)) error {
	vm := ova.VM{Name: b.spec.Name + "-" + arch, CPUs: 2, MemoryMiB: 2048, EFI: true, Arch: arch}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.vmdk")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := writeVMDK(ctxio.Writer(ctx, tmp), raw, rawSize, id, ova.DiskFileName(vm.Name)); err != nil {
		return fmt.Errorf("ova: %w", err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return err
	}
	n, err := writeOutput(ctx, path, func(w *os.File) error {
		return ova.Write(ctxio.Writer(ctx, w), vm, ctxio.ReaderAt(ctx, tmp), st.Size(), rawSize, b.epoch)
	})
	if err != nil {
		return err
	}
	record("ova", path, n)
	return nil
}

// writeGCE writes the disk as Compute Engine imports it: disk.raw in an
// old-GNU tar, gzip-compressed, with fixed timestamps. The tar entry is
// sparse (what `tar --format=oldgnu -S` makes, as Google documents), so
// only the disk's data is compressed, not a GiB of zeros.
func writeGCE(w io.Writer, rawPath string, size int64, epoch time.Time) error {
	src, err := os.Open(rawPath)
	if err != nil {
		return err
	}
	defer src.Close()
	// The disk is mostly a UKI, compressed already: level 1 deflates it
	// several times faster than the default for about the same size.
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := gnutar.WriteSparse(zw, "disk.raw", src, size, epoch); err != nil {
		return fmt.Errorf("gce: %w", err)
	}
	return zw.Close()
}
