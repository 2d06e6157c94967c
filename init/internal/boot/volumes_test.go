package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestFindVolumeAndProbe finds volumes by partition name and by ext4
// label in a fake /sys/class/block, and tells an empty partition from a
// formatted one and from someone else's data, on images mkfs.ext4 made.
func TestFindVolumeAndProbe(t *testing.T) {
	tooltest.Need(t, "mkfs.ext4")
	sys, devs := t.TempDir(), t.TempDir()
	img := func(name string, size int64) string {
		p := filepath.Join(devs, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size)
		f.Close()
		return p
	}
	dev := func(name, uevent string) {
		d := filepath.Join(sys, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "uevent"), []byte(uevent), 0o644)
	}
	empty := img("vda3", 8<<20)
	dev("vda3", "DEVNAME=vda3\nPARTNAME=data\n")
	labelled := img("vdb", 8<<20)
	dev("vdb", "DEVNAME=vdb\n")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "logs", labelled).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}

	if d, ok := findVolume(sys, devs, "data"); !ok || d != "/dev/vda3" {
		t.Errorf("data: %q %v, want /dev/vda3 by its partition name", d, ok)
	}
	if d, ok := findVolume(sys, devs, "logs"); !ok || d != filepath.Join(devs, "vdb") {
		t.Errorf("logs: %q %v, want vdb by its ext4 label", d, ok)
	}
	if _, ok := findVolume(sys, devs, "cache"); ok {
		t.Error("found a volume no device holds")
	}

	for _, c := range []struct {
		path string
		want content
	}{{empty, contentEmpty}, {labelled, contentExt4}} {
		b, err := readStart(c.path, probeSize)
		if err != nil {
			t.Fatal(err)
		}
		if got := probe(b); got != c.want {
			t.Errorf("%s: probe %v, want %v", c.path, got, c.want)
		}
	}
	b := make([]byte, probeSize)
	b[probeSize-1] = 1
	if probe(b) != contentOther {
		t.Error("stray data near the end of the probed area taken as empty")
	}
}
