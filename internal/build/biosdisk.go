package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/keelos/keel/internal/disk"
	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/grubpc"
	"github.com/keelos/keel/internal/uki"
)

const (
	// biosBootSize is the BIOS boot partition GRUB's core image goes in:
	// the customary MiB, several times what the core needs.
	biosBootSize = 1 << 20
	sector       = 512
)

// grubModules are what the core image needs to read the boot disk's GPT
// and start Linux; everything they depend on comes along.
var grubModules = []string{"biosdisk", "part_gpt", "linux"}

// grubBoot is GRUB's BIOS boot path on a disk. GRUB reads the kernel and
// the initramfs as block lists (sector ranges of the boot partition), so
// it needs no filesystem driver, and a disk that also boots through EFI
// needs no second copy: the block lists point into the UKI's .linux and
// .initrd sections.
type grubBoot struct {
	read           grubpc.ReadFile
	cmdline        kernelCmdline
	kernel, initrd bootPiece
}

// bootPiece is a byte range of a file in the boot partition.
type bootPiece struct {
	path      string // 8.3 names
	off, size int64
}

// grubFiles returns GRUB's i386-pc files from keel's grub-pc tool
// package (Debian's grub-pc-bin).
func (b *builder) grubFiles(ctx context.Context) (grubpc.ReadFile, error) {
	t, err := b.toolTree(ctx, "grub-pc", "amd64")
	if err != nil {
		return nil, err
	}
	return func(name string) ([]byte, error) {
		e, ok := t.Get("usr/lib/grub/i386-pc/" + name)
		if !ok {
			return nil, fmt.Errorf("grub-pc: /usr/lib/grub/i386-pc/%s is not in the package", name)
		}
		return readEntry(t, e)
	}, nil
}

// hybridDisk adds GRUB's BIOS boot path to an EFI disk, whose ESP holds
// ukiData at bootName.
func hybridDisk(efi bootDisk, bootName string, read grubpc.ReadFile, ukiData []byte, cmdline kernelCmdline) (bootDisk, error) {
	u, err := uki.Open(bytes.NewReader(ukiData), int64(len(ukiData)))
	if err != nil {
		return bootDisk{}, err
	}
	piece := func(name string) (bootPiece, error) {
		s, err := u.Section(name)
		if err != nil {
			return bootPiece{}, err
		}
		_, off, size := s.Outer()
		if off%sector != 0 {
			return bootPiece{}, fmt.Errorf("uki: section %s is not sector-aligned in the file", name)
		}
		return bootPiece{path: bootName, off: off, size: size}, nil
	}
	g := &grubBoot{read: read, cmdline: cmdline}
	if g.kernel, err = piece(".linux"); err != nil {
		return bootDisk{}, err
	}
	if g.initrd, err = piece(".initrd"); err != nil {
		return bootDisk{}, err
	}
	d := efi
	d.opts.Seed = seed(efi.name+" bios+efi", ukiData)
	d.opts.Partitions = append(slices.Clone(d.opts.Partitions), biosBootPartition())
	d.grub = g
	return d, nil
}

// biosDisk boots only through a BIOS: the kernel and initramfs in a FAT
// boot partition (an extended boot loader partition, not an ESP).
func biosDisk(read grubpc.ReadFile, kernel, initrd []byte, cmdline kernelCmdline, size int64, name string, epoch time.Time) bootDisk {
	const kernelPath, initrdPath = "KEEL/VMLINUZ", "KEEL/INITRD.IMG"
	return bootDisk{
		name: name,
		opts: disk.EFIOptions{
			Seed:       seed(name+" bios", kernel, initrd),
			ESPFiles:   fstree.MemFiles{{Path: kernelPath, Data: kernel}, {Path: initrdPath, Data: initrd}},
			ESPLabel:   "KEELBOOT",
			ESPType:    disk.TypeXBOOTLDR,
			ESPName:    "keel boot",
			Epoch:      epoch,
			Size:       size,
			Partitions: []disk.Partition{biosBootPartition()},
		},
		grub: &grubBoot{
			read: read, cmdline: cmdline,
			kernel: bootPiece{path: kernelPath, size: int64(len(kernel))},
			initrd: bootPiece{path: initrdPath, size: int64(len(initrd))},
		},
	}
}

// biosBootPartition is left zero until install writes GRUB's core image.
func biosBootPartition() disk.Partition {
	return disk.Partition{Name: "BIOS boot partition", Type: disk.TypeBIOSBoot, Size: biosBootSize}
}

// install writes GRUB into a disk WriteEFI has written: the core image,
// whose embedded configuration boots the kernel and initramfs from where
// the FAT writer put them, into the BIOS boot partition, and boot.img's
// code into the MBR.
func (g *grubBoot) install(f *os.File, opts disk.EFIOptions) error {
	l, err := disk.Plan(opts)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(opts.Partitions, func(p disk.Partition) bool { return p.Type == disk.TypeBIOSBoot })
	if i < 0 {
		return fmt.Errorf("grub: the disk has no BIOS boot partition")
	}
	biosPart, bootPart := l.Partitions[i+1], l.Partitions[0]
	blocks := func(p bootPiece) (string, error) {
		off, _, err := fat.Extent(f, bootPart.Start, p.path)
		if err != nil {
			return "", fmt.Errorf("grub: %w", err)
		}
		return fmt.Sprintf("%d+%d", (off+p.off)/sector, (p.size+sector-1)/sector), nil
	}
	kernel, err := blocks(g.kernel)
	if err != nil {
		return err
	}
	initrd, err := blocks(g.initrd)
	if err != nil {
		return err
	}
	config := fmt.Sprintf("linux %s %s\ninitrd %s\nboot\n", kernel, g.cmdline.grub(), initrd)
	img, err := grubpc.Build(g.read, grubpc.Options{
		Modules: grubModules,
		Prefix:  "(,gpt1)", // the boot partition of the disk the BIOS booted
		Config:  config,
		LBA:     uint64(biosPart.Start / sector),
	})
	if err != nil {
		return err
	}
	if int64(len(img.Core)) > biosPart.Size {
		return fmt.Errorf("grub: core image (%d bytes) does not fit the BIOS boot partition", len(img.Core))
	}
	if _, err := f.WriteAt(img.Core, biosPart.Start); err != nil {
		return fmt.Errorf("grub: %w", err)
	}
	if _, err := f.WriteAt(img.MBRCode, 0); err != nil {
		return fmt.Errorf("grub: %w", err)
	}
	return nil
}
