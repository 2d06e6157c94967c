// Package imageread reads files from the root file system inside any
// output keel writes, without mounting or unpacking it: the initramfs
// (kernel+initrd), the root tar, a UKI, an EFI ISO, a raw EFI disk and a
// qcow2 of it. `keel inspect` uses it to read /etc/keel.
//
// Each format is peeled down to the next by content, not by file name:
// qcow2 → GPT disk → EFI system partition (FAT) → UKI → .initrd section →
// compressed cpio; VHD, VHDX, VMDK (also inside an OVA) and the GCE
// tar.gz → the same GPT disk; ISO 9660 → EFI/BOOT/EFIBOOT.IMG (FAT) → UKI → …; the
// tar holds the root directly. The archive holding the root is then
// streamed once and only the files asked for are kept.
//
// imageread only recognises formats and chains their readers, each of
// which lives beside its writer: internal/qcow2, vhd, vmdk, disk (GPT),
// fat, iso9660, uki and initramfs (cpio).
package imageread

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keelos/keel/internal/disk"
	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/initramfs"
	"github.com/keelos/keel/internal/iso9660"
	"github.com/keelos/keel/internal/qcow2"
	"github.com/keelos/keel/internal/uki"
	"github.com/keelos/keel/internal/vhd"
	"github.com/keelos/keel/internal/vmdk"
)

// ErrNotImage is wrapped by Open's error when the file is in none of the
// formats keel writes.
var ErrNotImage = errors.New("not a keel output: not an initramfs, tar, UKI, ISO, raw disk, qcow2, VHD, VHDX, VMDK, OVA, GCE or Raspberry Pi image")

// Image is an opened keel output.
type Image struct {
	// Path is the file that was opened; for NAME-ARCH-kernel and
	// NAME-ARCH-cmdline it is the sibling NAME-ARCH-initrd.img.
	Path string
	// Format is the format's name in keel's table (internal/format),
	// recognised by content; where formats are the same bytes (aws and
	// raw, and on arm64 raw and raw-efi, iso and iso-efi) the file name
	// tells them apart.
	Format string
	// Layers describes how the root was found, outermost first, e.g.
	// ["qcow2", "GPT partition (EFI system)", "FAT", "UKI EFI/BOOT/BOOTX64.EFI",
	// ".initrd section", "cpio (zstd)"].
	Layers []string
	// Partitions are a GPT disk image's partitions (a volume's among
	// them); nil for the formats without a partition table.
	Partitions disk.Table

	f    *os.File
	kind rootKind
	// efi and bios say which boot paths a disk image has.
	efi, bios bool
	// open returns the stream of the archive holding the root (already
	// decompressed for cpio).
	open func() (io.ReadCloser, error)
}

// Open opens the keel output at path and locates its root file system.
func Open(path string) (*Image, error) {
	// The kernel of a kernel+initrd output holds no root: read its initrd.
	for _, suffix := range []string{"-kernel", "-cmdline"} {
		if base, ok := strings.CutSuffix(path, suffix); ok {
			if _, err := os.Stat(base + "-initrd.img"); err == nil {
				path = base + "-initrd.img"
			}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory", path)
	}
	im := &Image{Path: path, f: f}
	if err := im.locate(f, st.Size()); err != nil {
		f.Close()
		return nil, err
	}
	im.Format = format.ByFileName(im.Format, filepath.Base(path))
	return im, nil
}

// Close closes the image file.
func (im *Image) Close() error { return im.f.Close() }

func (im *Image) layer(s string) { im.Layers = append(im.Layers, s) }

// sniff reads the first bytes and the ISO 9660 and tar magic locations.
func sniff(r io.ReaderAt, size int64) (head []byte, iso, tar bool) {
	head = make([]byte, min(size, 1024))
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	if len(head) >= 262 && string(head[257:262]) == "ustar" {
		tar = true
	}
	var cd [5]byte
	if size > 0x8006 {
		if _, err := r.ReadAt(cd[:], 0x8001); err == nil && string(cd[:]) == "CD001" {
			iso = true
		}
	}
	return head, iso, tar
}

func (im *Image) locate(r io.ReaderAt, size int64) error {
	head, iso, isTar := sniff(r, size)
	switch {
	case bytes.HasPrefix(head, []byte("conectix")) || hasVHDFooter(r, size):
		d, err := vhd.Open(r, size)
		if err != nil {
			return err
		}
		im.Format = format.VHD
		if d.Dynamic() {
			im.Format = format.DynamicVHD
		}
		im.layer("VHD")
		return im.disk(d, d.Size())
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		d, err := vhd.OpenVHDX(r, size)
		if err != nil {
			return err
		}
		im.Format = format.VHDX
		im.layer("VHDX")
		return im.disk(d, d.Size())
	case bytes.HasPrefix(head, []byte("KDMV")):
		im.Format = format.VMDK
		return im.vmdk(r, size)
	case isTar && isOVA(r, size):
		im.Format = format.OVA
		im.layer("OVA")
		sec, name, err := ovaDisk(r, size)
		if err != nil {
			return err
		}
		im.layer(name)
		return im.vmdk(sec, sec.Size())
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}) && isGCE(r, size):
		im.Format = format.GCE
		im.layer("gzip tar disk.raw")
		d, n, err := gceDisk(r, size)
		if err != nil {
			return err
		}
		return im.disk(d, n)
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		im.Format = format.Qcow2EFI
		im.layer("qcow2")
		q, err := qcow2.Open(r)
		if err != nil {
			return err
		}
		if err := im.disk(q, q.Size()); err != nil {
			return err
		}
		if !im.efi {
			im.Format = format.Qcow2BIOS
		}
		return nil
	case iso:
		im.Format = format.ISOEFI
		im.layer("ISO 9660")
		v, err := iso9660.Open(r, size)
		if err != nil {
			return err
		}
		img, err := v.File("EFI/BOOT/EFIBOOT.IMG")
		if err == nil {
			if _, berr := v.File("ISOLINUX/ISOLINUX.BIN"); berr == nil {
				im.Format = format.ISO // BIOS and EFI
			}
			im.layer("EFI/BOOT/EFIBOOT.IMG")
			return im.fat(img)
		}
		// A BIOS-only ISO: ISOLINUX loads the initramfs as a plain file.
		initrd, ierr := v.File("BOOT/INITRD.IMG")
		if ierr != nil {
			return fmt.Errorf("%w (keel's ISOs hold EFI/BOOT/EFIBOOT.IMG or boot/initrd.img)", err)
		}
		im.Format = format.ISOBIOS
		im.layer("boot/initrd.img")
		return im.initramfs(initrd, "ISO boot/initrd.img")
	case len(head) >= 520 && string(head[512:520]) == "EFI PART":
		if err := im.disk(r, size); err != nil {
			return err
		}
		switch {
		case im.efi && im.bios:
			im.Format = format.Raw
		case im.bios:
			im.Format = format.RawBIOS
		default:
			im.Format = format.RawEFI
		}
		return nil
	case bytes.HasPrefix(head, []byte("MZ")):
		im.Format = format.UKI
		im.layer("UKI")
		return im.uki(r, size)
	case isRPi(head):
		return im.rpi(r, size)
	case isTar:
		im.Format = format.Tar
		im.layer("tar")
		im.kind = rootTar
		im.open = func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(r, 0, size)), nil }
		return nil
	}
	// Last: an initramfs, recognised by its codec.
	if codec, ok := initramfs.Detect(head); ok {
		im.Format = format.KernelInitrd
		im.cpio(io.NewSectionReader(r, 0, size), codec)
		return nil
	}
	return ErrNotImage
}

func (im *Image) vmdk(r io.ReaderAt, size int64) error {
	d, err := vmdk.Open(r, size)
	if err != nil {
		return err
	}
	im.layer("VMDK")
	return im.disk(d, d.Size())
}

// hasVHDFooter reports whether a file ends in a VHD footer: a fixed VHD is
// the raw disk followed by it, so it would otherwise pass for raw-efi.
func hasVHDFooter(r io.ReaderAt, size int64) bool {
	var cookie [8]byte
	if size < 512 {
		return false
	}
	_, err := r.ReadAt(cookie[:], size-512)
	return err == nil && string(cookie[:]) == "conectix"
}

// isGCE reports whether a gzip file holds a tar whose first entry is
// disk.raw, rather than an initramfs.
func isGCE(r io.ReaderAt, size int64) bool {
	zr, err := gzip.NewReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return false
	}
	defer zr.Close()
	h, err := tar.NewReader(zr).Next()
	return err == nil && h.Name == "disk.raw"
}

// disk finds the root in a GPT disk: in the UKI on the ESP, or, on a
// disk that boots only through a BIOS, in the initramfs GRUB loads from
// the boot partition.
func (im *Image) disk(r io.ReaderAt, size int64) error {
	parts, err := disk.ReadGPT(r, size)
	if err != nil {
		return err
	}
	im.Partitions = parts
	part, err := bootPart(parts)
	if err != nil {
		return err
	}
	im.bios = hasBootCode(r)
	vol := part.Section(r)
	fsys, err := fat.Open(vol, vol.Size())
	if err != nil {
		return err
	}
	ukiData, name, err := espUKI(fsys)
	if err == nil {
		im.efi = true
		im.layer("GPT EFI system partition")
		im.layer("FAT " + name)
		return im.uki(bytes.NewReader(ukiData), int64(len(ukiData)))
	}
	if !im.bios {
		return err
	}
	const initrdPath = "KEEL/INITRD.IMG"
	initrd, ierr := fsys.ReadFile(initrdPath)
	if ierr != nil {
		return fmt.Errorf("%w, nor %s for GRUB", err, initrdPath)
	}
	im.layer("GPT boot partition")
	im.layer("FAT " + initrdPath)
	return im.initramfs(io.NewSectionReader(bytes.NewReader(initrd), 0, int64(len(initrd))), initrdPath)
}

// bootPartition finds the EFI system partition of a GPT disk or, on a
// disk without one (booting only through a BIOS), the first partition.
func bootPartition(r io.ReaderAt, size int64) (disk.Part, error) {
	parts, err := disk.ReadGPT(r, size)
	if err != nil {
		return disk.Part{}, err
	}
	return bootPart(parts)
}

// bootPart is bootPartition on a partition table already read.
func bootPart(parts disk.Table) (disk.Part, error) {
	if p, ok := parts.ByType(disk.TypeESP); ok {
		return p, nil
	}
	if len(parts) == 0 {
		return disk.Part{}, errors.New("GPT: no partitions")
	}
	return parts[0], nil
}

// hasBootCode reports whether the MBR carries boot code (keel's BIOS
// disks: GRUB's boot.img); an EFI-only disk's protective MBR has none.
func hasBootCode(r io.ReaderAt) bool {
	var code [440]byte
	if _, err := r.ReadAt(code[:], 0); err != nil {
		return false
	}
	return !allZero(code[:])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// espUKI reads the UKI from a FAT volume: the removable-media boot path
// keel writes, EFI/BOOT/BOOTX64.EFI or BOOTAA64.EFI.
func espUKI(fsys *fat.FS) ([]byte, string, error) {
	for _, name := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/BOOTAA64.EFI"} {
		if data, err := fsys.ReadFile(name); err == nil {
			return data, name, nil
		}
	}
	return nil, "", errors.New("FAT: no EFI/BOOT/BOOTX64.EFI or EFI/BOOT/BOOTAA64.EFI")
}

func (im *Image) fat(vol *io.SectionReader) error {
	fsys, err := fat.Open(vol, vol.Size())
	if err != nil {
		return err
	}
	ukiData, name, err := espUKI(fsys)
	if err != nil {
		return err
	}
	im.layer("FAT " + name)
	return im.uki(bytes.NewReader(ukiData), int64(len(ukiData)))
}

func (im *Image) uki(r io.ReaderAt, size int64) error {
	u, err := uki.Open(r, size)
	if err != nil {
		return err
	}
	initrd, err := u.Section(".initrd")
	if err != nil {
		return err
	}
	im.layer(".initrd")
	return im.initramfs(initrd, "UKI .initrd")
}

// initramfs takes r, named what in errors, as the root's cpio archive,
// compressed as its first bytes say.
func (im *Image) initramfs(r *io.SectionReader, what string) error {
	var head [8]byte
	n, _ := r.ReadAt(head[:], 0)
	codec, ok := initramfs.Detect(head[:n])
	if !ok {
		return errors.New(what + ": not a zstd, gzip or newc cpio archive")
	}
	im.cpio(r, codec)
	return nil
}

func (im *Image) cpio(r *io.SectionReader, codec initramfs.Compression) {
	im.layer("cpio (" + codec.String() + ")")
	im.kind = rootCPIO
	im.open = func() (io.ReadCloser, error) {
		return initramfs.Decompress(io.NewSectionReader(r, 0, r.Size()))
	}
}

// Missing is returned by ReadFile for a file the image does not hold.
type Missing struct{ Name string }

func (e *Missing) Error() string { return "no /" + e.Name }

// Symlink is returned by ReadFile when the name is a symbolic link.
type Symlink struct{ Name, Target string }

func (e *Symlink) Error() string { return "/" + e.Name + " is a symbolic link to " + e.Target }

// ReadFiles reads the named regular files (paths from the root, with or
// without a leading slash) in one pass over the root archive. Files that
// do not exist are absent from the map; symbolic links are reported in
// links, name → target, and not followed.
func (im *Image) ReadFiles(names ...string) (files map[string][]byte, links map[string]string, err error) {
	c := newCollector(names)
	if len(c.want) == 0 {
		return c.files, c.links, nil
	}
	r, err := im.open()
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	if im.kind == rootTar {
		err = scanTar(r, c)
	} else {
		err = scanCPIO(r, c)
	}
	if err != nil {
		return nil, nil, err
	}
	return c.files, c.links, nil
}

// ReadFile reads one file of the root; it fails with *Missing or
// *Symlink when there is no regular file by that name.
func (im *Image) ReadFile(name string) ([]byte, error) {
	name = cleanName(name)
	files, links, err := im.ReadFiles(name)
	if err != nil {
		return nil, err
	}
	if t, ok := links[name]; ok {
		return nil, &Symlink{Name: name, Target: t}
	}
	data, ok := files[name]
	if !ok {
		return nil, &Missing{Name: name}
	}
	return data, nil
}

// Base is the image's file name, for messages.
func (im *Image) Base() string { return filepath.Base(im.Path) }
