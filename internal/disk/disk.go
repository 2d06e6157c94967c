// Package disk writes partitioned raw disk images, a GPT disk with an EFI
// system partition (and room for more partitions), and reads their
// partition tables back.
//
// Disk and partition GUIDs are derived from a caller-supplied seed (a hash
// of the image's content), so the same input gives the same bytes.
package disk

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
)

const (
	sectorSize = 512
	mib        = 1 << 20
	// Room for the backup GPT (header + 128 entries) at the end of the disk.
	backupGPT = 33 * sectorSize
)

// Partition types used by keel.
const (
	TypeESP             = gpt.EFISystemPartition
	TypeLinuxFilesystem = gpt.LinuxFilesystem
	TypeLinuxRootX86_64 = gpt.LinuxRootX86_64
	TypeLinuxRootArm64  = gpt.LinuxRootArm64
	TypeBIOSBoot        = gpt.BIOSBoot
	// TypeXBOOTLDR is a boot partition that is not the ESP (the Boot
	// Loader Specification's extended boot loader partition).
	TypeXBOOTLDR gpt.Type = "BC13C2FF-59E6-4262-A352-B275FD6F7172"
)

// Partition is an extra partition after the ESP, e.g. a squashfs root.
type Partition struct {
	Name string
	Type gpt.Type // e.g. TypeLinuxRootX86_64
	Size int64    // content size; the partition is rounded up to a MiB
	// Content holds the Size bytes written at the partition's start; nil
	// leaves the partition zero.
	Content io.ReaderAt
}

// EFIOptions describe a GPT disk whose first partition is the ESP.
type EFIOptions struct {
	// Seed makes the GUIDs: the same seed gives the same disk. Use a hash
	// of the image's inputs.
	Seed string
	// ESPFiles go into the FAT ESP, e.g. EFI/BOOT/BOOTX64.EFI.
	ESPFiles fstree.Source
	ESPLabel string    // FAT label, "ESP" if empty
	Epoch    time.Time // FAT timestamps
	// ESPType and ESPName are the first partition's GPT type and name,
	// the ESP's when empty; a disk that boots only through a BIOS keeps
	// its boot files in a FAT partition of another type.
	ESPType gpt.Type
	ESPName string
	// ESPSize is the ESP size in bytes; 0 fits it to ESPFiles.
	ESPSize    int64
	Partitions []Partition
	// Size is the whole disk; 0 fits it to the partitions.
	Size int64
}

// Layout is where WriteEFI puts things, in bytes.
type Layout struct {
	Size       int64
	Partitions []Extent // ESP first, then opts.Partitions
}

// Extent is one partition's byte range.
type Extent struct{ Start, Size int64 }

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// Plan computes the layout WriteEFI will use.
func Plan(opts EFIOptions) (Layout, error) {
	esp := opts.ESPSize
	if esp == 0 {
		esp = fat.Size(opts.ESPFiles)
	}
	esp = alignUp(esp, mib)
	l := Layout{Partitions: []Extent{{Start: mib, Size: esp}}}
	end := mib + esp
	for _, p := range opts.Partitions {
		size := alignUp(p.Size, mib)
		if size == 0 {
			return Layout{}, fmt.Errorf("disk: partition %q is empty", p.Name)
		}
		l.Partitions = append(l.Partitions, Extent{Start: end, Size: size})
		end += size
	}
	need := alignUp(end+backupGPT, mib)
	l.Size = need
	if opts.Size != 0 {
		if opts.Size < need {
			return Layout{}, fmt.Errorf("disk: size %d is smaller than the %d bytes the partitions need", opts.Size, need)
		}
		if opts.Size%sectorSize != 0 {
			return Layout{}, fmt.Errorf("disk: size %d is not a multiple of %d", opts.Size, sectorSize)
		}
		l.Size = opts.Size
	}
	return l, nil
}

// GUID derives a stable GUID (RFC 4122 version-4 layout) from seed and what.
func GUID(seed, what string) string {
	h := sha256.Sum256([]byte("keel-gpt\x00" + seed + "\x00" + what))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// WriteEFI writes the disk into f, which should be empty; f ends up
// exactly Layout.Size bytes long.
func WriteEFI(f *os.File, opts EFIOptions) error {
	l, err := Plan(opts)
	if err != nil {
		return err
	}
	if err := f.Truncate(l.Size); err != nil {
		return fmt.Errorf("disk: size image: %w", err)
	}
	label := opts.ESPLabel
	if label == "" {
		label = "ESP"
	}
	typ, name := opts.ESPType, opts.ESPName
	if typ == "" {
		typ, name = TypeESP, "EFI System Partition"
	}
	parts := []*gpt.Partition{{
		Index: 1, Start: uint64(l.Partitions[0].Start / sectorSize),
		End:  uint64((l.Partitions[0].Start+l.Partitions[0].Size)/sectorSize - 1),
		Size: uint64(l.Partitions[0].Size), Type: typ, Name: name,
		GUID: GUID(opts.Seed, "partition 1"),
	}}
	for i, p := range opts.Partitions {
		e := l.Partitions[i+1]
		parts = append(parts, &gpt.Partition{
			Index: i + 2, Start: uint64(e.Start / sectorSize), End: uint64((e.Start+e.Size)/sectorSize - 1),
			Size: uint64(e.Size), Type: p.Type, Name: p.Name,
			GUID: GUID(opts.Seed, fmt.Sprintf("partition %d", i+2)),
		})
	}
	table := &gpt.Table{
		Partitions:         parts,
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		GUID:               GUID(opts.Seed, "disk"),
		ProtectiveMBR:      true,
	}
	if err := table.Write(f, l.Size); err != nil {
		return fmt.Errorf("disk: write GPT: %w", err)
	}
	esp := l.Partitions[0]
	if err := fat.Write(f, esp.Start, esp.Size, opts.ESPFiles, fat.Options{Label: label, Epoch: opts.Epoch}); err != nil {
		return fmt.Errorf("disk: ESP: %w", err)
	}
	for i, p := range opts.Partitions {
		if p.Content == nil {
			continue
		}
		e := l.Partitions[i+1]
		n, err := io.Copy(io.NewOffsetWriter(f, e.Start), io.NewSectionReader(p.Content, 0, p.Size))
		if err != nil {
			return fmt.Errorf("disk: partition %q: %w", p.Name, err)
		}
		if n != p.Size {
			return fmt.Errorf("disk: partition %q: got %d bytes, expected %d", p.Name, n, p.Size)
		}
	}
	return nil
}
