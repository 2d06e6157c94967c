package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/spec"
)

// TestRPiFirmwareFromDir takes the firmware from KEEL_RPI_FIRMWARE; a
// directory without fixup4.dat fails naming it and saying how to provide
// the firmware.
func TestRPiFirmwareFromDir(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"start4.elf", "start.elf", "LICENCE.broadcom", "overlays/x.dtbo", "unrelated.txt"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(RPiFirmwareEnv, dir)
	b := &builder{}
	fw, err := b.rpiFirmware(context.Background(), "arm64")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"start4.elf", "start.elf", "LICENCE.broadcom", "overlays/x.dtbo"} {
		if string(fw[name]) != name {
			t.Errorf("%s: %q", name, fw[name])
		}
	}
	if _, ok := fw["unrelated.txt"]; ok {
		t.Error("a file that is no firmware was taken")
	}
	err = checkRPiFirmware(fw)
	if err == nil || !strings.Contains(err.Error(), "fixup4.dat is not in the Raspberry Pi firmware") ||
		!strings.Contains(err.Error(), RPiFirmwareEnv) || !strings.Contains(err.Error(), "non-free-firmware") {
		t.Errorf("missing fixup4.dat: err = %v", err)
	}
	fw["fixup4.dat"] = []byte("x")
	if err := checkRPiFirmware(fw); err != nil {
		t.Error(err)
	}
}

// TestRPiDTBsFromKernel finds the Pi device trees wherever the kernel
// image keeps them, and a kernel without the Pi 5's is refused by name.
func TestRPiDTBsFromKernel(t *testing.T) {
	store, err := fstree.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kt := fstree.New(store)
	for _, p := range []string{
		"usr/lib/linux-image-6.12.0-arm64/broadcom/bcm2711-rpi-4-b.dtb",
		"usr/lib/linux-image-6.12.0-arm64/broadcom/bcm2837-rpi-3-b.dtb",
		"usr/lib/linux-image-6.12.0-arm64/broadcom/bcm4908-asus-gt-ac5300.dtb",
		"usr/lib/linux-image-6.12.0-arm64/rockchip/rk3399-rock-pi-4b.dtb",
	} {
		if err := kt.AddFile(p, 0o644, 0, 0, strings.NewReader(p)); err != nil {
			t.Fatal(err)
		}
	}
	dtbs, err := rpiDTBs(&system{ktree: kt})
	if err != nil {
		t.Fatal(err)
	}
	if len(dtbs) != 2 || dtbs["bcm2711-rpi-4-b.dtb"] == nil || dtbs["bcm2837-rpi-3-b.dtb"] == nil {
		t.Errorf("device trees: %v", sortedKeys(dtbs))
	}
	err = checkRPiDTBs(dtbs, "./kernel/debian")
	if err == nil || !strings.Contains(err.Error(), "./kernel/debian has no bcm2712-rpi-5-b.dtb") || !strings.Contains(err.Error(), "kernel/debian-raspi") {
		t.Errorf("no Pi 5 device tree: err = %v", err)
	}
}

// TestCheckArchFormats refuses rpi for amd64 and the BIOS formats for
// arm64, naming the format and what to use instead.
func TestCheckArchFormats(t *testing.T) {
	for _, c := range []struct {
		arch, format, want string
	}{
		{"amd64", "rpi", `output format "rpi": Raspberry Pi 4/5 images are arm64 only, not amd64 (use --arch arm64)`},
		{"arm64", "raw-bios", `output format "raw-bios": BIOS boot is x86 only, not arm64 (use raw-efi, or raw)`},
		{"arm64", "qcow2-bios", `output format "qcow2-bios": BIOS boot is x86 only, not arm64 (use qcow2-efi)`},
		{"arm64", "iso-bios", `output format "iso-bios": BIOS boot is x86 only, not arm64 (use iso-efi, or iso)`},
	} {
		s := &spec.Spec{Arch: []string{"amd64", "arm64"}}
		s.Output.Formats = []string{"raw-efi", c.format}
		if err := checkFormats(s); err == nil || err.Error() != c.want {
			t.Errorf("%s for %s: err = %v, want %s", c.format, c.arch, err, c.want)
		}
		s.Arch = []string{map[string]string{"amd64": "arm64", "arm64": "amd64"}[c.arch]}
		if err := checkFormats(s); err != nil {
			t.Errorf("%s for %s: %v", c.format, s.Arch[0], err)
		}
	}
}
