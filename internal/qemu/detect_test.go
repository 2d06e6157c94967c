package qemu

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fake files carrying just the magic numbers Detect reads.
func bzImage() []byte {
	b := make([]byte, 1024)
	copy(b, "MZ")
	copy(b[0x202:], "HdrS")
	return b
}

func arm64Image() []byte {
	b := make([]byte, 1024)
	copy(b, "MZ")
	copy(b[56:], "ARM\x64")
	return b
}

func peImage(machine uint16) []byte {
	b := make([]byte, 1024)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[60:], 128)
	copy(b[128:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[132:], machine)
	return b
}

func isoImage() []byte {
	b := make([]byte, 0x8800)
	copy(b[0x8001:], "CD001")
	return b
}

func mbrDisk() []byte {
	b := make([]byte, 4096)
	b[510], b[511] = 0x55, 0xaa
	return b
}

func fixedVHD() []byte {
	b := mbrDisk()
	b = append(b, make([]byte, 512)...)
	copy(b[len(b)-512:], "conectix")
	return b
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("host-amd64-initrd.img", []byte("initrd"))
	write("host-amd64-cmdline", []byte("console=ttyS0\n  keel.console_log=1\n"))
	for _, tc := range []struct {
		name   string
		body   []byte
		format Format
		arch   string
		uefi   bool
	}{
		{"host-amd64-kernel", bzImage(), FormatKernel, "amd64", true},
		{"host-amd64-efi.iso", isoImage(), FormatISO, "amd64", true},
		{"host-amd64-bios.iso", isoImage(), FormatISO, "amd64", false},
		{"host-arm64-efi.raw", mbrDisk(), FormatRaw, "arm64", true},
		{"host-amd64-bios.raw", mbrDisk(), FormatRaw, "amd64", false},
		{"host-amd64-aws.raw", mbrDisk(), FormatRaw, "amd64", true},
		{"host-amd64-efi.qcow2", []byte("QFI\xfb...."), FormatQcow2, "amd64", true},
		{"host-arm64.vhd", fixedVHD(), FormatVPC, "arm64", true},
		{"host-amd64.vmdk", []byte("KDMV...."), FormatVMDK, "amd64", true},
		{"host-amd64.vhdx", []byte("vhdxfile"), FormatVHDX, "amd64", true},
		{"host-arm64.efi", peImage(0xaa64), FormatUKI, "arm64", true},
		// Names that do not say: the content does.
		{"vmlinuz", arm64Image(), FormatKernel, "arm64", true},
		{"bzImage", bzImage(), FormatKernel, "amd64", true},
		{"linux.efi", peImage(0x8664), FormatUKI, "amd64", true},
		{"unnamed-uki", peImage(0xaa64), FormatUKI, "arm64", true},
		{"disk", []byte("QFI\xfb...."), FormatQcow2, runtime.GOARCH, true},
		{"disk2", fixedVHD(), FormatVPC, runtime.GOARCH, true},
		{"cd", isoImage(), FormatISO, runtime.GOARCH, true},
		{"mbr", mbrDisk(), FormatRaw, runtime.GOARCH, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Detect(write(tc.name, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if img.Format != tc.format || img.Arch != tc.arch || img.UEFI != tc.uefi {
				t.Errorf("Detect = %s %s uefi=%v, want %s %s uefi=%v", img.Format, img.Arch, img.UEFI, tc.format, tc.arch, tc.uefi)
			}
		})
	}
}

func TestDetectKernelSiblings(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "host-arm64")
	os.WriteFile(prefix+"-kernel", arm64Image(), 0o644)
	os.WriteFile(prefix+"-initrd.img", []byte("x"), 0o644)
	os.WriteFile(prefix+"-cmdline", []byte("console=ttyAMA0\n keel.console_log=1\n"), 0o644)
	for _, given := range []string{"-kernel", "-initrd.img", "-cmdline"} {
		img, err := Detect(prefix + given)
		if err != nil {
			t.Fatal(err)
		}
		if img.Path != prefix+"-kernel" || img.Initrd != prefix+"-initrd.img" ||
			img.Cmdline != "console=ttyAMA0 keel.console_log=1" || img.Arch != "arm64" {
			t.Errorf("Detect(%s) = %+v", given, img)
		}
	}
}

func TestDetectRejects(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not an image"), 0o644)
	notPE := filepath.Join(dir, "x.efi")
	os.WriteFile(notPE, []byte("hello"), 0o644)
	for _, p := range []string{junk, notPE, filepath.Join(dir, "missing.raw"), dir} {
		if img, err := Detect(p); err == nil {
			t.Errorf("Detect(%s) = %+v, want an error", p, img)
		} else if !strings.Contains(err.Error(), filepath.Base(p)) {
			t.Errorf("Detect(%s): error %q does not name the file", p, err)
		}
	}
}
