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
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/gnutar"
	"github.com/keelos/keel/internal/ova"
	"github.com/keelos/keel/internal/qcow2"
	"github.com/keelos/keel/internal/vhd"
	"github.com/keelos/keel/internal/vmdk"
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

// disk is the plan of the disk s, made once.
func (o *archOutputs) disk(ctx context.Context, s format.Source) (bootDisk, error) {
	if d, ok := o.disks[s]; ok {
		return d, nil
	}
	var d bootDisk
	size := o.b.spec.Output.Size.Bytes() // 0: fit
	name := o.b.spec.Name + "-" + o.sys.arch
	bootName := efiBootName(o.sys.arch)
	switch s {
	case format.EFIDisk:
		uki, err := o.ukiImage(ctx)
		if err != nil {
			return bootDisk{}, err
		}
		d = efiDisk(bootName, uki, size, name, o.b.epoch)
		d.opts.Partitions = slices.Concat(d.opts.Partitions, o.sys.rootPartitions(), volumePartitions(o.b.spec.Volumes))
	case format.VMDisk:
		// The disk for every machine: on amd64 it boots through EFI and
		// through a BIOS (Azure generation 1, Compute Engine and EC2
		// without UEFI, VMware's default), elsewhere through EFI.
		efi, err := o.disk(ctx, format.EFIDisk)
		if err != nil || o.sys.arch != "amd64" {
			return efi, err
		}
		uki, err := o.ukiImage(ctx)
		if err != nil {
			return bootDisk{}, err
		}
		grub, err := o.grubFiles(ctx)
		if err != nil {
			return bootDisk{}, err
		}
		if d, err = hybridDisk(efi, bootName, grub, uki, o.sys.cmdline); err != nil {
			return bootDisk{}, err
		}
	case format.BIOSDisk:
		if o.sys.arch != "amd64" {
			return bootDisk{}, fmt.Errorf("BIOS boot is x86 only, not %s", o.sys.arch)
		}
		grub, err := o.grubFiles(ctx)
		if err != nil {
			return bootDisk{}, err
		}
		initrd, err := o.initramfs(ctx)
		if err != nil {
			return bootDisk{}, err
		}
		d = biosDisk(grub, o.sys.kernel, initrd, o.sys.cmdline, size, name, o.b.epoch)
		d.opts.Partitions = slices.Concat(d.opts.Partitions, o.sys.rootPartitions(), volumePartitions(o.b.spec.Volumes))
	case format.CloudDisk:
		vm, err := o.disk(ctx, format.VMDisk)
		if err != nil {
			return bootDisk{}, err
		}
		if d, err = vm.cloud(); err != nil {
			return bootDisk{}, err
		}
	default:
		return bootDisk{}, fmt.Errorf("%s is not a disk", s)
	}
	o.disks[s] = d
	return d, nil
}

// rawFormat is the format that is the disk s written as it is.
func rawFormat(s format.Source) (format.Descriptor, error) {
	for _, f := range format.All() {
		if f.From == s && f.Raw {
			return f, nil
		}
	}
	return format.Descriptor{}, fmt.Errorf("no raw format of the %s", s)
}

// rawDisk writes the disk s once: as its raw format's output when that is
// asked for, else to a temporary file next to it. The cloud disk is the
// VM disk's file when that is written and a whole number of GiB already.
func (o *archOutputs) rawDisk(ctx context.Context, s format.Source) (rawFile, error) {
	if r, ok := o.raws[s]; ok {
		return r, nil
	}
	d, err := o.disk(ctx, s)
	if err != nil {
		return rawFile{}, err
	}
	if s == format.CloudDisk && o.needs(format.VMDisk) {
		vm, err := o.rawDisk(ctx, format.VMDisk)
		if err != nil {
			return rawFile{}, err
		}
		if vm.size == d.opts.Size {
			o.raws[s] = vm
			return vm, nil
		}
	}
	raw, err := rawFormat(s)
	if err != nil {
		return rawFile{}, err
	}
	r := rawFile{path: o.path(raw, 0)}
	if o.wants(raw.Name) {
		r.format = raw.Name
	} else {
		r.path = filepath.Join(filepath.Dir(r.path), "."+filepath.Base(r.path)+".tmp")
		o.cleanups = append(o.cleanups, func() { os.Remove(r.path) })
	}
	if r.size, err = writeOutput(ctx, r.path, func(f *os.File) error { return d.write(ctx, f) }); err != nil {
		return rawFile{}, err
	}
	if r.format != "" {
		o.record(r.format, r.path, r.size)
	}
	o.raws[s] = r
	return r, nil
}

// writeRawFormat writes a disk as it is: the intermediate itself, unless
// that is another format's file (the VM disk standing for the cloud
// disk), then a copy of its own.
func writeRawFormat(ctx context.Context, o *archOutputs, f format.Descriptor) error {
	r, err := o.rawDisk(ctx, f.From)
	if err != nil || r.format == f.Name {
		return err
	}
	d, err := o.disk(ctx, f.From)
	if err != nil {
		return err
	}
	return o.write(ctx, f, 0, func(w *os.File) error { return d.write(ctx, w) })
}

// encoding is what an encoder knows of the disk it re-encodes.
type encoding struct {
	id    [16]byte // the disk's content id
	name  string   // NAME-ARCH
	arch  string
	path  string // the output file
	epoch time.Time
}

// encoder writes the raw disk (size bytes) in another format.
type encoder func(w io.Writer, raw io.ReaderAt, size int64, e encoding) error

// convertRaw is the writer of a format that re-encodes the raw disk it
// is made from.
func convertRaw(enc encoder) writer {
	return func(ctx context.Context, o *archOutputs, f format.Descriptor) error {
		r, err := o.rawDisk(ctx, f.From)
		if err != nil {
			return err
		}
		d, err := o.disk(ctx, f.From)
		if err != nil {
			return err
		}
		src, err := os.Open(r.path)
		if err != nil {
			return err
		}
		defer src.Close()
		e := encoding{id: contentID(d.opts.Seed), name: d.name, arch: o.sys.arch, path: o.path(f, 0), epoch: o.b.epoch}
		return o.write(ctx, f, 0, func(w *os.File) error {
			return enc(ctxio.Writer(ctx, w), ctxio.ReaderAt(ctx, src), r.size, e)
		})
	}
}

func encodeQcow2(w io.Writer, raw io.ReaderAt, size int64, _ encoding) error {
	return qcow2.Write(w, raw, size)
}

func encodeVHD(w io.Writer, raw io.ReaderAt, size int64, e encoding) error {
	return vhd.WriteFixed(w, raw, size, vhd.Options{UUID: e.id, Mtime: e.epoch})
}

func encodeDynamicVHD(w io.Writer, raw io.ReaderAt, size int64, e encoding) error {
	return vhd.WriteDynamic(w, raw, size, vhd.Options{UUID: e.id, Mtime: e.epoch})
}

func encodeVHDX(w io.Writer, raw io.ReaderAt, size int64, e encoding) error {
	return vhd.WriteVHDX(w, raw, size, vhd.Options{UUID: e.id, Mtime: e.epoch})
}

func encodeVMDK(w io.Writer, raw io.ReaderAt, size int64, e encoding) error {
	return writeVMDK(w, raw, size, e.id, filepath.Base(e.path))
}

// encodeOVA packs a stream-optimized VMDK of the raw disk into an OVA for
// vSphere and VirtualBox: EFI firmware, 2 vCPUs and 2 GiB, which the
// importer can change. The VMDK is written for the OVA (its descriptor
// names the file as the OVA does) and packed from a temporary file.
func encodeOVA(w io.Writer, raw io.ReaderAt, size int64, e encoding) error {
	vm := ova.VM{Name: e.name, CPUs: 2, MemoryMiB: 2048, EFI: true, Arch: e.arch}
	tmp, err := os.CreateTemp(filepath.Dir(e.path), "."+filepath.Base(e.path)+".*.vmdk")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := writeVMDK(tmp, raw, size, e.id, ova.DiskFileName(vm.Name)); err != nil {
		return fmt.Errorf("ova: %w", err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return err
	}
	return ova.Write(w, vm, tmp, st.Size(), size, e.epoch)
}

// encodeGCE writes the disk as Compute Engine imports it: disk.raw in an
// old-GNU tar, gzip-compressed, with fixed timestamps. The tar entry is
// sparse (what `tar --format=oldgnu -S` makes, as Google documents), so
// only the disk's data is compressed, not a GiB of zeros.
func encodeGCE(w io.Writer, raw io.ReaderAt, size int64, e encoding) error {
	// The disk is mostly a UKI, compressed already: level 1 deflates it
	// several times faster than the default for about the same size.
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := gnutar.WriteSparse(zw, "disk.raw", raw, size, e.epoch); err != nil {
		return fmt.Errorf("gce: %w", err)
	}
	return zw.Close()
}
