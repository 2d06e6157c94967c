package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectRefusesRPi names a Raspberry Pi image (an MBR with a FAT32
// first partition and no boot code) instead of booting it as a raw disk.
func TestDetectRefusesRPi(t *testing.T) {
	b := make([]byte, 4096)
	b[446+4] = 0x0c
	b[510], b[511] = 0x55, 0xaa
	p := filepath.Join(t.TempDir(), "x-arm64-rpi.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Detect(p); err == nil || !strings.Contains(err.Error(), "Raspberry Pi image") {
		t.Errorf("Detect: err = %v", err)
	}
	// The same table behind boot code is a BIOS disk, booted as raw.
	b[0] = 0xeb
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if img, err := Detect(p); err != nil || img.Format != FormatRaw {
		t.Errorf("Detect of a disk with boot code: %+v, %v", img, err)
	}
}
