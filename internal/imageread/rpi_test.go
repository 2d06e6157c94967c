package imageread

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/rpi"
)

// TestReadRPi finds the root in initrd.img on the FAT32 partition of a
// Raspberry Pi disk as internal/rpi writes it.
func TestReadRPi(t *testing.T) {
	outs := outputs(t)
	initrd, err := os.ReadFile(outs[format.KernelInitrd])
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "host-arm64-rpi.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	err = rpi.WriteDisk(f, rpi.Options{Seed: "t", Files: fstree.MemFiles{
		{Path: rpi.ConfigName, Data: rpi.Config("host")}, {Path: rpi.InitrdName, Data: initrd}, {Path: rpi.KernelName, Data: []byte("kernel")},
	}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	im, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Format != format.RPi {
		t.Errorf("format %q, want %q (layers %v)", im.Format, format.RPi, im.Layers)
	}
	got, err := im.ReadFile("etc/keel/build.toml")
	if err != nil || string(got) != fixtureFiles["etc/keel/build.toml"] {
		t.Errorf("etc/keel/build.toml: %q, %v (layers %v)", got, err, im.Layers)
	}
}
