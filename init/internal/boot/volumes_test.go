package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/keelos/keel/internal/tooltest"
)

func TestReadVolumes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "volumes")
	if err := os.WriteFile(p, []byte("data 4294967296\nlogs 1048576\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadVolumes(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Volume{{"data", 4 << 30}, {"logs", 1 << 20}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if v, err := ReadVolumes(filepath.Join(dir, "none")); v != nil || err != nil {
		t.Errorf("missing file: %v %v", v, err)
	}
	for _, bad := range []string{"data\n", "data -1\n", "Data 1\n", "../x 1\n"} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := ReadVolumes(p); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestFindVolume finds volumes by partition name and by ext4 label in a
// fake sysfs, on images mkfs.ext4 made.
func TestFindVolume(t *testing.T) {
	tooltest.Need(t, "mkfs.ext4", "mkfs.vfat")
	sys, devs := t.TempDir(), t.TempDir()
	dev := func(name, uevent string, size int64) string {
		d := filepath.Join(sys, "class", "block", name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "uevent"), []byte(uevent), 0o644)
		os.WriteFile(filepath.Join(d, "size"), []byte(strconv.FormatInt(size/512, 10)+"\n"), 0o644)
		p := filepath.Join(devs, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size)
		f.Close()
		return p
	}
	dev("vda3", "DEVNAME=vda3\nPARTNAME=data\n", 8<<20)
	for name, mkfs := range map[string][]string{"vdb": {"mkfs.ext4", "-q", "-F", "-L", "logs"}, "vdc": {"mkfs.vfat", "-n", "CACHE"}} {
		p := dev(name, "DEVNAME="+name+"\n", 8<<20)
		if out, err := exec.Command(mkfs[0], append(mkfs[1:], p)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", mkfs[0], err, out)
		}
	}

	if d, ok := findVolume(sys, devs, "data"); !ok || d != "/dev/vda3" {
		t.Errorf("data: %q %v, want /dev/vda3 by its partition name", d, ok)
	}
	if d, ok := findVolume(sys, devs, "logs"); !ok || d != filepath.Join(devs, "vdb") {
		t.Errorf("logs: %q %v, want vdb by its ext4 label", d, ok)
	}
	// A FAT volume labelled so is not an ext4 one: not taken.
	for _, name := range []string{"CACHE", "cache", "none"} {
		if d, ok := findVolume(sys, devs, name); ok {
			t.Errorf("%s: found %s", name, d)
		}
	}
}
