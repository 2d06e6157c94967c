package mount

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const mountinfo = `22 1 0:21 / / rw,relatime shared:1 - rootfs rootfs rw
30 22 254:16 / /var/lib/containerd rw,noatime shared:12 - ext4 /dev/vdb rw
31 22 0:40 / /mnt/with\040space rw shared:13 - tmpfs tmpfs rw
`

func TestIsMountPoint(t *testing.T) {
	for path, want := range map[string]bool{
		"/var/lib/containerd":  true,
		"/var/lib/containerd/": true,
		"/var/lib":             false,
		"/mnt/with space":      true,
		"/mnt/with":            false,
	} {
		got, err := IsMountPoint(strings.NewReader(mountinfo), path)
		if err != nil || got != want {
			t.Errorf("%q: got %v %v, want %v", path, got, err, want)
		}
	}
}

func TestFindByLabelOnRealExt4(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	for _, d := range []struct{ name, label string }{{"vda", ""}, {"vdb", "keel-data"}} {
		img := filepath.Join(dev, d.name)
		os.WriteFile(img, nil, 0o644)
		os.Truncate(img, 8<<20)
		args := []string{"-q", "-F"}
		if d.label != "" {
			args = append(args, "-L", d.label)
		}
		if out, err := exec.Command("mkfs.ext4", append(args, img)...).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
		s := filepath.Join(sys, "class", "block", d.name)
		os.MkdirAll(s, 0o755)
		os.WriteFile(filepath.Join(s, "size"), []byte("16384\n"), 0o644)
	}
	got, err := FindByLabel(sys, dev, "keel-data", 0)
	if err != nil || got != filepath.Join(dev, "vdb") {
		t.Fatalf("got %q %v", got, err)
	}
	start := time.Now()
	if _, err := FindByLabel(sys, dev, "missing", 300*time.Millisecond); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing label: %v", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("did not wait for the device")
	}
}
