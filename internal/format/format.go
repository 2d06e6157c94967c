// Package format is keel's one table of output formats: for each, its
// name (as [output] formats and --format spell it), the files it writes,
// the architecture it boots on, whether it can carry a root on disk, and
// the intermediate it is made from.
//
// Everything that names formats reads this table: the spec's validation
// of [output] formats, `keel build --format` (help, completion, checks),
// the build's walk over the formats asked for (internal/build attaches a
// writer to each entry), `keel inspect` and the docs, which a test checks
// against it. The package depends on nothing of keel's, so the spec can
// read it without importing the builder.
package format

import (
	"slices"
	"strings"
)

// The format names.
const (
	KernelInitrd = "kernel+initrd"
	Tar          = "tar"
	UKI          = "uki"
	ISOEFI       = "iso-efi"
	ISOBIOS      = "iso-bios"
	ISO          = "iso"
	RawEFI       = "raw-efi"
	RawBIOS      = "raw-bios"
	Raw          = "raw"
	Qcow2EFI     = "qcow2-efi"
	Qcow2BIOS    = "qcow2-bios"
	VHD          = "vhd"
	DynamicVHD   = "dynamic-vhd"
	VHDX         = "vhdx"
	VMDK         = "vmdk"
	OVA          = "ova"
	GCE          = "gce"
	AWS          = "aws"
	RPi          = "rpi"
)

// Source is an intermediate of a build, which formats are made from.
// Each is made at most once per architecture, and only when a format
// asked for is made from it.
type Source int

const (
	// Tree is the assembled root file system.
	Tree Source = iota + 1
	// Initramfs is the kernel with the initramfs (the root, or with a
	// root on disk what mounts it) and the command line.
	Initramfs
	// UKIImage is the unified kernel image: systemd's EFI stub, the
	// kernel, the initramfs and the command line in one PE file.
	UKIImage
	// EFIDisk is the GPT disk whose EFI system partition holds the UKI.
	EFIDisk
	// BIOSDisk is the GPT disk GRUB boots from a BIOS: the kernel and
	// the initramfs in a FAT boot partition, GRUB in a BIOS boot one.
	BIOSDisk
	// VMDisk is the disk for every machine: the EFI disk, plus on amd64
	// GRUB's BIOS path reading the kernel and initramfs out of the UKI.
	VMDisk
	// CloudDisk is the VM disk at a whole number of GiB, which GCE and
	// EBS count disks in.
	CloudDisk
)

var sourceNames = [...]string{
	Tree:      "root tree",
	Initramfs: "kernel + initramfs",
	UKIImage:  "UKI",
	EFIDisk:   "EFI disk",
	BIOSDisk:  "BIOS disk",
	VMDisk:    "VM disk",
	CloudDisk: "cloud disk",
}

func (s Source) String() string {
	if s <= 0 || int(s) >= len(sourceNames) {
		return "unknown source"
	}
	return sourceNames[s]
}

// From is the intermediate s is made from, 0 for the tree.
func (s Source) From() Source {
	switch s {
	case Initramfs:
		return Tree
	case UKIImage, BIOSDisk:
		return Initramfs
	case EFIDisk, VMDisk:
		return UKIImage
	case CloudDisk:
		return VMDisk
	}
	return 0
}

// Disk reports whether s is a GPT disk, which carries the root
// partition of a root on disk.
func (s Source) Disk() bool {
	switch s {
	case EFIDisk, BIOSDisk, VMDisk, CloudDisk:
		return true
	}
	return false
}

// Descriptor describes one output format.
type Descriptor struct {
	Name string
	// Suffixes name the files the format writes: each is the file name
	// after NAME-ARCH, in the order the files are written.
	Suffixes []string
	// Arch is the one architecture that boots the format, "" for every
	// one; ArchWhy says why, Instead what to use on another.
	Arch, ArchWhy, Instead string
	// From is the intermediate the format is made from.
	From Source
	// Raw says the format is its intermediate (a disk) written as it is,
	// not re-encoded.
	Raw bool
	// Same are the formats whose bytes this one's are on some
	// architecture, which a reader tells apart by file name only (aws is
	// the raw disk when that is a whole number of GiB; on arm64 raw is
	// the raw-efi disk and iso the iso-efi image).
	Same []string
	// Summary says in a few words what the format is, for help texts.
	Summary string
}

// all is the table, in the order of the docs; a build walks it in this
// order.
var all = []Descriptor{
	{Name: KernelInitrd, Suffixes: []string{"-kernel", "-initrd.img", "-cmdline"}, From: Initramfs,
		Summary: "the kernel, the initramfs and the command line as three files"},
	{Name: Tar, Suffixes: []string{".tar"}, From: Tree,
		Summary: "the root file system as a tar"},
	{Name: UKI, Suffixes: []string{".efi"}, From: UKIImage,
		Summary: "unified kernel image: EFI stub, kernel, initramfs, command line"},
	{Name: ISOEFI, Suffixes: []string{"-efi.iso"}, From: UKIImage,
		Summary: "ISO booting the UKI through EFI"},
	{Name: ISOBIOS, Suffixes: []string{"-bios.iso"}, From: Initramfs,
		Arch: "amd64", ArchWhy: "BIOS boot is x86 only", Instead: "use iso-efi, or iso",
		Summary: "ISO booting through ISOLINUX on a BIOS"},
	{Name: ISO, Suffixes: []string{".iso"}, From: UKIImage, Same: []string{ISOEFI},
		Summary: "hybrid ISO: EFI, and BIOS on amd64; also a USB stick"},
	{Name: RawEFI, Suffixes: []string{"-efi.raw"}, From: EFIDisk, Raw: true,
		Summary: "GPT disk booting the UKI through EFI"},
	{Name: RawBIOS, Suffixes: []string{"-bios.raw"}, From: BIOSDisk, Raw: true,
		Arch: "amd64", ArchWhy: "BIOS boot is x86 only", Instead: "use raw-efi, or raw",
		Summary: "GPT disk booting through GRUB on a BIOS"},
	{Name: Raw, Suffixes: []string{".raw"}, From: VMDisk, Raw: true, Same: []string{RawEFI},
		Summary: "GPT disk for every machine: EFI, and BIOS on amd64"},
	{Name: Qcow2EFI, Suffixes: []string{"-efi.qcow2"}, From: EFIDisk,
		Summary: "the raw-efi disk as qcow2"},
	{Name: Qcow2BIOS, Suffixes: []string{"-bios.qcow2"}, From: BIOSDisk,
		Arch: "amd64", ArchWhy: "BIOS boot is x86 only", Instead: "use qcow2-efi",
		Summary: "the raw-bios disk as qcow2"},
	{Name: VHD, Suffixes: []string{".vhd"}, From: VMDisk,
		Summary: "the raw disk as a fixed VHD (Azure)"},
	{Name: DynamicVHD, Suffixes: []string{"-dynamic.vhd"}, From: VMDisk,
		Summary: "the raw disk as a dynamic VHD (Hyper-V, VirtualBox)"},
	{Name: VHDX, Suffixes: []string{".vhdx"}, From: VMDisk,
		Summary: "the raw disk as a VHDX (Hyper-V)"},
	{Name: VMDK, Suffixes: []string{".vmdk"}, From: VMDisk,
		Summary: "the raw disk as a stream-optimized VMDK (vSphere)"},
	{Name: OVA, Suffixes: []string{".ova"}, From: VMDisk,
		Summary: "OVF package of the raw disk's VMDK (vSphere, VirtualBox)"},
	{Name: GCE, Suffixes: []string{"-gce.tar.gz"}, From: CloudDisk,
		Summary: "the raw disk in whole GiB as Compute Engine imports it"},
	{Name: AWS, Suffixes: []string{"-aws.raw"}, From: CloudDisk, Raw: true, Same: []string{Raw, RawEFI},
		Summary: "the raw disk in whole GiB for an EBS snapshot import"},
	{Name: RPi, Suffixes: []string{"-rpi.img"}, From: Initramfs,
		Arch: "arm64", ArchWhy: "Raspberry Pi 4/5 images are arm64 only", Instead: "use --arch arm64",
		Summary: "Raspberry Pi 4/5 SD card image"},
}

// An Alias is an output format name of another image builder (LinuxKit's
// `linuxkit build --format`) that is not also one of the table's: either
// another name for a format of the table, or a name keel refuses, saying
// what to use instead. [output] formats and --format take them.
type Alias struct {
	Name   string // the name as LinuxKit users type it
	Format string // the format of the table it stands for; "" when refused
	Use    string // when refused: what to use instead, and why
}

// aliases are LinuxKit's format names that are not also keel's.
// LinuxKit's kernel+initrd, tar, iso-bios, iso-efi, raw-bios, raw-efi,
// qcow2-efi, qcow2-bios, vhd, dynamic-vhd, vmdk and aws are formats of
// the table by the same name and need no entry.
var aliases = []Alias{
	{Name: "gcp", Format: GCE},
	// LinuxKit's iso-efi-initrd boots a kernel and an initrd from an EFI
	// ISO: keel's iso-efi is exactly that (both inside a UKI).
	{Name: "iso-efi-initrd", Format: ISOEFI},
	{Name: "tar-kernel-initrd", Use: `"kernel+initrd" (the kernel, initramfs and command line as three files, not in a tar)`},
	{Name: "kernel+squashfs", Use: `a disk format such as "raw-efi" with [output] root = "squashfs" (keel mounts a squashfs root only from a disk partition)`},
	{Name: "kernel+erofs", Use: `a disk format such as "raw-efi" with [output] root = "erofs" (keel mounts an erofs root only from a disk partition)`},
	{Name: "kernel+iso", Use: `"iso-efi", "iso-bios" or "iso" (keel's ISOs carry the kernel and boot by themselves)`},
	{Name: "rpi3", Use: `"rpi" (a Raspberry Pi 4 and 5 SD card image; the Pi 3 is not a keel target)`},
	{Name: "docker", Use: `"tar" and docker import (keel writes no container image of the system)`},
}

// Aliases returns the other names of formats, accepted or refused.
func Aliases() []Alias { return slices.Clone(aliases) }

// LookupAlias returns the alias named name.
func LookupAlias(name string) (Alias, bool) {
	i := slices.IndexFunc(aliases, func(a Alias) bool { return a.Name == name })
	if i < 0 {
		return Alias{}, false
	}
	return aliases[i], true
}

// All returns the table.
func All() []Descriptor { return slices.Clone(all) }

// Names returns every format name, in the table's order.
func Names() []string {
	names := make([]string, len(all))
	for i, d := range all {
		names[i] = d.Name
	}
	return names
}

// Lookup returns the format named name.
func Lookup(name string) (Descriptor, bool) {
	i := slices.IndexFunc(all, func(d Descriptor) bool { return d.Name == name })
	if i < 0 {
		return Descriptor{}, false
	}
	return all[i], true
}

// Boots reports whether the format boots on arch.
func (d Descriptor) Boots(arch string) bool { return d.Arch == "" || d.Arch == arch }

// CarriesDiskRoot reports whether the format holds a root on disk
// ([output] root = "squashfs" or "erofs"): a disk carries it as a
// partition, the tar is the root tree itself. The others boot only an
// initrd root.
func (d Descriptor) CarriesDiskRoot() bool { return d.From == Tree || d.From.Disk() }

// MadeFrom reports whether the format is made, directly or through other
// intermediates, from s.
func (d Descriptor) MadeFrom(s Source) bool {
	for x := d.From; x != 0; x = x.From() {
		if x == s {
			return true
		}
	}
	return false
}

// ByFileName names the format of a file whose content was recognised as
// the format content: the format whose suffix the file name ends in
// (the longest that fits) when its bytes can be those of content, else
// content. It tells apart the formats that are the same bytes (aws and
// raw; on arm64 raw and raw-efi, iso and iso-efi), which no reader can
// by content.
func ByFileName(content, fileName string) string {
	best, bestLen := "", 0
	for _, d := range all {
		for _, s := range d.Suffixes {
			if strings.HasSuffix(fileName, s) && len(s) > bestLen {
				best, bestLen = d.Name, len(s)
			}
		}
	}
	if d, ok := Lookup(best); ok && slices.Contains(d.Same, content) {
		return best
	}
	return content
}
