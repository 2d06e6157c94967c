package qemu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Format is how a bootable image is laid out, as QEMU needs to be told.
type Format string

// The formats keel writes and Detect recognises.
const (
	FormatKernel Format = "kernel+initrd" // booted directly with -kernel/-initrd/-append
	FormatUKI    Format = "uki"           // one EFI executable, booted from a virtual ESP
	FormatISO    Format = "iso"
	FormatRaw    Format = "raw"
	FormatQcow2  Format = "qcow2"
	FormatVPC    Format = "vpc" // VHD
	FormatVMDK   Format = "vmdk"
	FormatVHDX   Format = "vhdx"
)

// Image is a bootable file and what Detect learnt about it.
type Image struct {
	Path   string // the kernel for FormatKernel, else the image file
	Format Format
	Arch   string // "amd64" or "arm64"
	UEFI   bool   // boot through EFI firmware (false: SeaBIOS, amd64 only)

	// FormatKernel only: the sibling files keel writes next to the kernel;
	// empty when absent.
	Initrd  string
	Cmdline string // contents of NAME-ARCH-cmdline, trimmed
}

// Detect works out the format, architecture and firmware of a keel output
// from its name (docs/internals.md, "Output file names") and, where the
// name does not say, from its content. Passing the -initrd.img or -cmdline
// file of a kernel+initrd output selects that output too.
func Detect(path string) (Image, error) {
	img := Image{Path: path, UEFI: true}
	base := filepath.Base(path)
	stem := base
	for _, suffix := range []string{"-initrd.img", "-cmdline"} {
		if s, ok := strings.CutSuffix(base, suffix); ok {
			img.Path = filepath.Join(filepath.Dir(path), s+"-kernel")
			stem, base = s, s+"-kernel"
		}
	}
	head, size, err := readHead(img.Path)
	if err != nil {
		return Image{}, err
	}

	ext := strings.ToLower(filepath.Ext(base))
	if ext != "" {
		stem = strings.TrimSuffix(base, filepath.Ext(base))
	}
	// An MBR with a FAT32 (LBA) first partition and no boot code: keel's
	// rpi image, for a board QEMU does not have.
	if len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa && head[450] == 0x0c && bytes.Equal(head[:440], make([]byte, 440)) {
		return Image{}, fmt.Errorf("%s: a Raspberry Pi image, which QEMU cannot boot (it has no Pi 4 or Pi 5 model); write it to an SD card (README, \"Raspberry Pi\")", path)
	}
	switch ext {
	case ".iso":
		img.Format = FormatISO
	case ".raw", ".img":
		img.Format = FormatRaw
	case ".qcow2":
		img.Format = FormatQcow2
	case ".vhd":
		img.Format = FormatVPC
	case ".vmdk":
		img.Format = FormatVMDK
	case ".vhdx":
		img.Format = FormatVHDX
	case ".efi":
		img.Format = FormatUKI
	default:
		if s, ok := strings.CutSuffix(base, "-kernel"); ok {
			img.Format, stem = FormatKernel, s
		} else if img.Format, err = sniffFormat(img.Path, head, size); err != nil {
			return Image{}, err
		}
	}
	if img.Format == FormatUKI && !bytes.HasPrefix(head, []byte("MZ")) {
		return Image{}, fmt.Errorf("%s: not an EFI executable (no MZ header)", path)
	}

	// keel names outputs NAME-ARCH[-efi|-bios|-aws].EXT.
	if strings.HasSuffix(stem, "-bios") {
		img.UEFI = false
	}
	for _, a := range []string{"amd64", "arm64"} {
		if strings.Contains(stem+"-", "-"+a+"-") {
			img.Arch = a
		}
	}
	if img.Arch == "" {
		img.Arch = sniffArch(img.Format, head)
	}
	if img.Arch == "" {
		img.Arch = runtime.GOARCH
	}

	if img.Format == FormatKernel {
		prefix := strings.TrimSuffix(img.Path, "-kernel")
		if _, err := os.Stat(prefix + "-initrd.img"); err == nil {
			img.Initrd = prefix + "-initrd.img"
		}
		b, err := os.ReadFile(prefix + "-cmdline")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return Image{}, fmt.Errorf("read kernel command line: %w", err)
		}
		img.Cmdline = strings.Join(strings.Fields(string(b)), " ")
	}
	return img, nil
}

// headSize covers every magic number sniffFormat looks at except the VHD
// footer, which sits at the end of the file.
const headSize = 64 << 10

func readHead(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("open image: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("open image: %w", err)
	}
	if fi.IsDir() {
		return nil, 0, fmt.Errorf("%s is a directory, not an image", path)
	}
	head := make([]byte, headSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read image: %w", err)
	}
	return head[:n], fi.Size(), nil
}

func sniffFormat(path string, head []byte, size int64) (Format, error) {
	at := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "QFI\xfb"):
		return FormatQcow2, nil
	case at(0, "KDMV"), at(0, "# Disk DescriptorFile"):
		return FormatVMDK, nil
	case at(0, "vhdxfile"):
		return FormatVHDX, nil
	case at(0, "conectix"): // dynamic VHD keeps a copy of the footer first
		return FormatVPC, nil
	case at(0x202, "HdrS"), at(56, "ARM\x64"), at(0, "\x7fELF"):
		return FormatKernel, nil
	case at(0, "MZ"):
		return FormatUKI, nil
	case at(0x8001, "CD001"):
		return FormatISO, nil
	}
	if size >= 512 {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("open image: %w", err)
		}
		defer f.Close()
		footer := make([]byte, 8)
		if _, err := f.ReadAt(footer, size-512); err != nil {
			return "", fmt.Errorf("read image: %w", err)
		}
		if string(footer) == "conectix" {
			return FormatVPC, nil
		}
	}
	if at(510, "\x55\xaa") {
		return FormatRaw, nil
	}
	return "", fmt.Errorf("%s: unknown image format (want a keel output: -kernel, .efi, .iso, .raw, .qcow2, .vhd, .vhdx or .vmdk)", path)
}

// sniffArch reads the architecture from a kernel or EFI executable header;
// disks and ISOs do not say cheaply.
func sniffArch(f Format, head []byte) string {
	if f != FormatKernel && f != FormatUKI {
		return ""
	}
	switch {
	case len(head) >= 0x206 && string(head[0x202:0x206]) == "HdrS":
		return "amd64"
	case len(head) >= 60 && string(head[56:60]) == "ARM\x64":
		return "arm64"
	case len(head) >= 20 && string(head[:4]) == "\x7fELF":
		switch binary.LittleEndian.Uint16(head[18:20]) {
		case 62: // EM_X86_64
			return "amd64"
		case 183: // EM_AARCH64
			return "arm64"
		}
	case len(head) >= 64 && string(head[:2]) == "MZ":
		pe := int(binary.LittleEndian.Uint32(head[60:64]))
		if pe+6 <= len(head) && string(head[pe:pe+4]) == "PE\x00\x00" {
			switch binary.LittleEndian.Uint16(head[pe+4 : pe+6]) {
			case 0x8664:
				return "amd64"
			case 0xaa64:
				return "arm64"
			}
		}
	}
	return ""
}
