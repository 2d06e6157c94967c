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

// TestCheckRPiArch refuses rpi for amd64, naming the format.
func TestCheckRPiArch(t *testing.T) {
	s := &spec.Spec{Arch: []string{"arm64", "amd64"}}
	s.Output.Formats = []string{"raw-efi", "rpi"}
	if err := checkRPiArch(s); err == nil || !strings.Contains(err.Error(), `"rpi"`) || !strings.Contains(err.Error(), "not amd64") {
		t.Errorf("err = %v", err)
	}
	s.Arch = []string{"arm64"}
	if err := checkRPiArch(s); err != nil {
		t.Error(err)
	}
}
