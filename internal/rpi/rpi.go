// Package rpi writes Raspberry Pi boot media: an MBR (DOS) disk whose
// first partition is a FAT32 (type 0x0c, LBA) volume holding the Pi
// firmware, config.txt, cmdline.txt, the kernel, the initramfs and the
// device trees, which is what the Pi boot ROM (Pi 3) and EEPROM
// bootloader (Pi 4, Pi 5) read.
//
// The disk signature and the FAT serial follow from the content, so the
// same inputs give the same bytes.
package rpi

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
)

const (
	sectorSize = 512
	mib        = 1 << 20
	// partStart aligns the boot partition to 4 MiB, as Raspberry Pi OS
	// does: SD cards erase in blocks of up to 4 MiB.
	partStart = 4 * mib
	// minPart keeps the volume FAT32 (internal/fat writes FAT16 below
	// 64 MiB), the type the Pi documentation asks for, with room to
	// replace the kernel and initramfs in place.
	minPart = 128 * mib
)

// Boot file names on the partition.
const (
	KernelName  = "vmlinuz"
	InitrdName  = "initrd.img"
	ConfigName  = "config.txt"
	CmdlineName = "cmdline.txt"
)

// Required names what a bootable Pi 4 / Pi 5 partition cannot do without,
// beside the kernel and initramfs: the Pi 4 firmware (its EEPROM
// bootloader loads start4.elf and fixup4.dat from the partition) and one
// device tree per board. A Pi 5 needs no firmware file: its EEPROM
// starts the kernel itself.
var (
	RequiredFirmware = []string{"start4.elf", "fixup4.dat"}
	RequiredDTBs     = []string{"bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb"}
	// OptionalFirmware boots the Pi 3 family (bootcode.bin from the boot
	// ROM, then start.elf); copied when the firmware package has it.
	OptionalFirmware = []string{"bootcode.bin", "start.elf", "fixup.dat"}
)

// IsPiDTB reports whether a device tree file name is one of a 64-bit
// Raspberry Pi board (BCM2837: Pi 3 and Zero 2 W, BCM2711: Pi 4, 400,
// CM4, BCM2712: Pi 5), the ones the firmware looks for by name.
func IsPiDTB(name string) bool {
	if path.Ext(name) != ".dtb" {
		return false
	}
	for _, soc := range []string{"bcm2837-", "bcm2711-", "bcm2712-", "bcm2712d"} {
		if strings.HasPrefix(name, soc) {
			return true
		}
	}
	return false
}

// Config is config.txt: 64-bit mode, the kernel and initramfs by name,
// the serial console, upstream (Debian) kernel naming of device trees.
func Config(name string) []byte {
	return []byte(`# Raspberry Pi boot configuration of the keel image "` + name + `".
# The firmware reads it; the kernel command line is in ` + CmdlineName + `.
[all]
# Start the ARM cores in 64-bit mode (a Pi 5 always does).
arm_64bit=1
# Debian's kernel and device trees are upstream Linux's: the firmware
# uses upstream device tree names and applies no downstream overlay.
upstream_kernel=1
# keel's names, not the defaults (kernel8.img on a Pi 4,
# kernel_2712.img on a Pi 5).
kernel=` + KernelName + `
initramfs ` + InitrdName + ` followkernel
# Serial console on GPIO 14/15 (header pins 8 and 10): on a Pi 3 or 4 the
# mini UART (ttyS1), whose clock this also fixes. A Pi 5 has a separate
# 3-pin debug UART connector as well (ttyAMA10).
enable_uart=1

[pi4]
# The EEPROM bootloader loads start4.elf and fixup4.dat, then the kernel.

[pi5]
# The EEPROM bootloader loads the kernel, the initramfs and
# bcm2712-rpi-5-b.dtb itself: no start*.elf.

[all]
`)
}

// Consoles are the serial consoles of the supported boards, the one that
// becomes /dev/console last: the Pi 5's debug UART and the GPIO UART of a
// Pi 3 or 4 (the 8250 mini UART, serial1 in the upstream device trees).
// A console that does not exist on a board is ignored by the kernel.
// They stand in cmdline.txt for the consoles keel adds when a spec names
// none (meant for virtual machines, such as ttyAMA0 under QEMU's virt
// board, which is the Bluetooth UART on a Pi).
var Consoles = []string{"console=ttyAMA10,115200", "console=ttyS1,115200"}

// Options describe a Pi boot disk.
type Options struct {
	// Seed names the content; the disk signature follows from it.
	Seed  string
	Files fstree.Source // the boot partition's files
	Label string        // FAT label, "KEEL-BOOT" if empty
	Epoch time.Time     // FAT timestamps
	// Size is the whole disk in bytes; 0 fits it to the files.
	Size int64
}

// Layout is where WriteDisk puts the boot partition, in bytes.
type Layout struct {
	Size                int64
	PartStart, PartSize int64
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// Plan computes the layout WriteDisk will use: the boot partition from
// 4 MiB, fitted to the files (at least 128 MiB, so it is FAT32), and the
// disk ending with it unless Size asks for more.
func Plan(opts Options) (Layout, error) {
	part := max(alignUp(fat.Size(opts.Files), mib), minPart)
	l := Layout{PartStart: partStart, PartSize: part, Size: partStart + part}
	if opts.Size != 0 {
		if opts.Size < l.Size {
			return Layout{}, fmt.Errorf("rpi: size %d is smaller than the %d bytes the boot partition needs", opts.Size, l.Size)
		}
		if opts.Size%sectorSize != 0 {
			return Layout{}, fmt.Errorf("rpi: size %d is not a multiple of %d", opts.Size, sectorSize)
		}
		l.Size = opts.Size
	}
	if l.Size/sectorSize > 1<<32-1 {
		return Layout{}, fmt.Errorf("rpi: size %d is beyond what an MBR addresses (2 TiB)", l.Size)
	}
	return l, nil
}

// DiskSignature is the MBR disk identifier (bytes 440–443) for seed: the
// PARTUUID prefix Linux and the Pi firmware show.
func DiskSignature(seed string) uint32 {
	h := sha256.Sum256([]byte("keel-mbr\x00" + seed))
	if s := binary.LittleEndian.Uint32(h[:4]); s != 0 {
		return s
	}
	return 1
}

// chs is the cylinder/head/sector address of lba in the usual 255-head,
// 63-sector geometry, or the maximum when lba is beyond it.
func chs(lba uint32) (c, h, s byte) {
	const heads, sectors = 255, 63
	cyl := lba / (heads * sectors)
	if cyl > 1023 {
		return 0xff, 0xfe, 0xff
	}
	head := lba / sectors % heads
	sec := lba%sectors + 1
	return byte(cyl), byte(head), byte(sec) | byte(cyl>>8)<<6
}

// WriteDisk writes the disk into f, which should be empty; f ends up
// exactly Layout.Size bytes long.
func WriteDisk(f *os.File, opts Options) error {
	l, err := Plan(opts)
	if err != nil {
		return err
	}
	if err := f.Truncate(l.Size); err != nil {
		return fmt.Errorf("rpi: size image: %w", err)
	}
	start := uint32(l.PartStart / sectorSize)
	size := uint32(l.PartSize / sectorSize)
	p := &mbr.Partition{Index: 1, Bootable: true, Type: mbr.Fat32LBA, Start: start, Size: size}
	p.StartCylinder, p.StartHead, p.StartSector = chs(start)
	p.EndCylinder, p.EndHead, p.EndSector = chs(start + size - 1)
	table := &mbr.Table{Partitions: []*mbr.Partition{p}, LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize}
	if err := table.Write(f, l.Size); err != nil {
		return fmt.Errorf("rpi: write MBR: %w", err)
	}
	var sig [4]byte
	binary.LittleEndian.PutUint32(sig[:], DiskSignature(opts.Seed))
	if _, err := f.WriteAt(sig[:], 440); err != nil {
		return fmt.Errorf("rpi: write disk signature: %w", err)
	}
	label := opts.Label
	if label == "" {
		label = "KEEL-BOOT"
	}
	if err := fat.Write(f, l.PartStart, l.PartSize, opts.Files, fat.Options{Label: label, Epoch: opts.Epoch}); err != nil {
		return fmt.Errorf("rpi: boot partition: %w", err)
	}
	// The BPB's hidden sectors count is the partition's first sector, as
	// mkfs.fat writes it on a partition (go-diskfs leaves 0), in the boot
	// sector and its FAT32 backup (sector 6).
	var hidden [4]byte
	binary.LittleEndian.PutUint32(hidden[:], start)
	for _, sector := range []int64{0, 6} {
		if _, err := f.WriteAt(hidden[:], l.PartStart+sector*sectorSize+0x1c); err != nil {
			return fmt.Errorf("rpi: boot partition: hidden sectors: %w", err)
		}
	}
	return nil
}
