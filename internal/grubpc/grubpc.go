// Package grubpc assembles GRUB's BIOS boot path (the i386-pc platform)
// from the files Debian's grub-pc-bin ships, without GRUB's own tools:
// what grub-mkimage does to make core.img and what grub-bios-setup does to
// point the MBR at it, for a disk whose layout keel decides.
//
// The boot chain is: boot.img in the MBR loads the first sector of
// core.img (diskboot.img) from a fixed LBA; diskboot loads the rest from
// the block list in its last bytes; the LZMA decompressor unpacks GRUB's
// kernel and the modules packed behind it; the kernel loads the modules
// and runs the embedded configuration.
package grubpc

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ulikunitz/xz/lzma"
)

const (
	sectorSize = 512
	linkAddr   = 0x9000 // where the i386-pc kernel is linked

	// Offsets in lzma_decompress.img (include/grub/offsets.h).
	compressedSizeOff   = 0x08
	uncompressedSizeOff = 0x0c

	// Offsets in boot.img (include/grub/i386/pc/boot.h).
	kernelSectorOff = 0x5c
	driveCheckOff   = 0x66
	// boot.img's code ends where the disk signature and partition table
	// start; the rest of the MBR is the partition table's.
	bootCodeEnd = 0x1b8

	moduleMagic = 0x676d696d // "mimg"

	// Object types of the module area (include/grub/kernel.h).
	objELF    = 0
	objConfig = 2
	objPrefix = 3

	// Real-mode segment diskboot loads core.img's second sector to.
	kernelSeg = 0x800 + sectorSize>>4

	// GRUB's limits for a core image loaded below 0x78000.
	maxCore = 0x78000 - linkAddr
)

// Image is a core image and the boot sector code that loads it.
type Image struct {
	// Core is core.img; write it at the LBA given to Core.
	Core []byte
	// MBRCode is the first 440 bytes of the disk (boot.img with the
	// core's location); the disk signature and partition table after it
	// stay the partition table's.
	MBRCode []byte
}

// Options say what the core image holds and where it goes.
type Options struct {
	// Modules are loaded at start, with what they depend on.
	Modules []string
	// Prefix is GRUB's $prefix; "(,gpt2)" names partition 2 of the disk
	// the BIOS booted from, and sets $root.
	Prefix string
	// Config is run once the modules are loaded, before normal mode.
	Config string
	// LBA is the sector core.img is written at; it must be written in
	// one piece.
	LBA uint64
}

// ReadFile returns one file of GRUB's i386-pc directory
// (/usr/lib/grub/i386-pc): boot.img, diskboot.img, lzma_decompress.img,
// kernel.img, moddep.lst or a module (NAME.mod).
type ReadFile func(name string) ([]byte, error)

// Build makes core.img and the MBR code from GRUB's i386-pc files.
func Build(readFile ReadFile, opts Options) (*Image, error) {
	read := func(name string) ([]byte, error) {
		data, err := readFile(name)
		if err != nil {
			return nil, fmt.Errorf("grub i386-pc: %w", err)
		}
		return data, nil
	}
	files := map[string][]byte{}
	for _, name := range []string{"boot.img", "diskboot.img", "lzma_decompress.img", "kernel.img", "moddep.lst"} {
		data, err := read(name)
		if err != nil {
			return nil, err
		}
		files[name] = data
	}
	if len(files["boot.img"]) != sectorSize || len(files["diskboot.img"]) != sectorSize {
		return nil, fmt.Errorf("grub i386-pc: boot.img and diskboot.img must be one sector each")
	}
	deps, err := parseModDeps(files["moddep.lst"])
	if err != nil {
		return nil, err
	}
	order, err := loadOrder(deps, opts.Modules)
	if err != nil {
		return nil, err
	}
	kernel, err := loadKernel(files["kernel.img"])
	if err != nil {
		return nil, err
	}

	// The module area follows the kernel: a header, then each object
	// with its own header, every object padded to four bytes.
	var mods bytes.Buffer
	object := func(typ uint32, data []byte) {
		size := align4(len(data))
		binary.Write(&mods, binary.LittleEndian, [2]uint32{typ, uint32(8 + size)})
		mods.Write(data)
		mods.Write(make([]byte, size-len(data)))
	}
	for _, m := range order {
		data, err := read(m + ".mod")
		if err != nil {
			return nil, err
		}
		object(objELF, data)
	}
	if opts.Config != "" {
		object(objConfig, append([]byte(opts.Config), 0))
	}
	if opts.Prefix != "" {
		object(objPrefix, append([]byte(opts.Prefix), 0))
	}
	payload := make([]byte, 0, len(kernel)+12+mods.Len())
	payload = append(payload, kernel...)
	payload = binary.LittleEndian.AppendUint32(payload, moduleMagic)
	payload = binary.LittleEndian.AppendUint32(payload, 12)
	payload = binary.LittleEndian.AppendUint32(payload, uint32(12+mods.Len()))
	payload = append(payload, mods.Bytes()...)

	compressed, err := compress(payload)
	if err != nil {
		return nil, err
	}
	decomp := slices.Clone(files["lzma_decompress.img"])
	binary.LittleEndian.PutUint32(decomp[compressedSizeOff:], uint32(len(compressed)))
	binary.LittleEndian.PutUint32(decomp[uncompressedSizeOff:], uint32(len(payload)))
	body := append(decomp, compressed...)
	if len(body) > maxCore {
		return nil, fmt.Errorf("grub i386-pc: core image is %d bytes, more than GRUB can load (%d)", len(body), maxCore)
	}

	// diskboot.img loads the rest of core.img from one block list entry
	// (the core is contiguous) followed by an empty terminator.
	core := slices.Clone(files["diskboot.img"])
	sectors := (len(body) + sectorSize - 1) / sectorSize
	entry := core[sectorSize-12:]
	binary.LittleEndian.PutUint64(entry[0:], opts.LBA+1)
	binary.LittleEndian.PutUint16(entry[8:], uint16(sectors))
	binary.LittleEndian.PutUint16(entry[10:], kernelSeg)
	clear(core[sectorSize-24 : sectorSize-12])
	core = append(core, body...)
	core = append(core, make([]byte, (sectors+1)*sectorSize-len(core))...)

	mbr := slices.Clone(files["boot.img"][:bootCodeEnd])
	binary.LittleEndian.PutUint64(mbr[kernelSectorOff:], opts.LBA)
	// A hard disk: skip boot.img's check that trusts only 0x80-0x8f in DL
	// and falls back to 0x80, which breaks booting from a second disk;
	// grub-bios-setup does the same for disks that are not floppies.
	mbr[driveCheckOff], mbr[driveCheckOff+1] = 0x90, 0x90
	return &Image{Core: core, MBRCode: mbr}, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// loadKernel lays kernel.img's allocated, initialised sections out at
// their link addresses, as grub-mkimage does for a platform whose kernel
// is not relocated: the result is the kernel as it runs from 0x9000.
func loadKernel(data []byte) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("grub i386-pc: kernel.img: %w", err)
	}
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 {
		return nil, fmt.Errorf("grub i386-pc: kernel.img is not a 32-bit x86 ELF file")
	}
	var out []byte
	for _, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		if s.Addr < linkAddr {
			return nil, fmt.Errorf("grub i386-pc: kernel.img section %s at %#x is below the link address", s.Name, s.Addr)
		}
		off := int(s.Addr - linkAddr)
		end := off + int(s.Size)
		if end > len(out) {
			out = append(out, make([]byte, end-len(out))...)
		}
		if _, err := io.ReadFull(s.Open(), out[off:end]); err != nil {
			return nil, fmt.Errorf("grub i386-pc: kernel.img section %s: %w", s.Name, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("grub i386-pc: kernel.img has no sections to load")
	}
	return out, nil
}

// compress packs data the way GRUB's decompressor reads it: a raw LZMA
// stream (lc=3, lp=0, pb=2) without header or end marker.
func compress(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{
		Properties:   &lzma.Properties{LC: 3, LP: 0, PB: 2},
		DictCap:      1 << 16,
		SizeInHeader: true,
		Size:         int64(len(data)),
	}.NewWriter(&buf)
	if err != nil {
		return nil, fmt.Errorf("grub i386-pc: lzma: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("grub i386-pc: lzma: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("grub i386-pc: lzma: %w", err)
	}
	const header = 13 // properties, dictionary size, uncompressed size
	return buf.Bytes()[header:], nil
}

// parseModDeps reads moddep.lst: "module: dependency …" per line.
func parseModDeps(data []byte) (map[string][]string, error) {
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("grub i386-pc: moddep.lst: malformed line %q", line)
		}
		deps[name] = strings.Fields(rest)
	}
	return deps, sc.Err()
}

// loadOrder lists the modules and their dependencies, each after what it
// depends on: GRUB loads embedded modules in order and cannot fetch a
// missing dependency from disk that early.
func loadOrder(deps map[string][]string, modules []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(m string, from string) error
	visit = func(m, from string) error {
		switch state[m] {
		case 1:
			return fmt.Errorf("grub i386-pc: module dependency cycle through %s", m)
		case 2:
			return nil
		}
		d, ok := deps[m]
		if !ok {
			if from != "" {
				return fmt.Errorf("grub i386-pc: module %s (needed by %s) is not in moddep.lst", m, from)
			}
			return fmt.Errorf("grub i386-pc: module %s is not in moddep.lst", m)
		}
		state[m] = 1
		for _, dep := range d {
			if err := visit(dep, m); err != nil {
				return err
			}
		}
		state[m] = 2
		order = append(order, m)
		return nil
	}
	for _, m := range modules {
		if err := visit(m, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}
