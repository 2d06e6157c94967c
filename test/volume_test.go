package test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/tooltest"
)

// volumeSpec is a spec with a [[volume]] and a service that binds it by
// name: it writes a note into the volume unless one is there, and says
// which it did on the console.
func volumeSpec(t *testing.T, dir string) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	s := `name = "vol"
init = ["` + repo + `/init"]

[kernel]
image = "` + repo + `/kernel/debian-cloud"
cmdline = "panic=-1 keel.console_log=1"
modules = ["virtio_blk"]

[[service]]
name = "writer"
image = "` + repo + `/pkg/getty"
command = ["/bin/sh", "-c", "if [ -f /data/note ]; then echo found-$(cat /data/note); else echo kept-42 > /data/note && sync && echo wrote-note; fi"]
binds = ["data:/data"]
restart = "never"

[[volume]]
name = "data"
size = "256MiB"

[output]
formats = ["raw-efi", "qcow2-efi", "kernel+initrd"]
`
	p := filepath.Join(dir, "vol.toml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVolumeSurvivesPowerOffSlow builds an image with a volume, checks the
// volume's partition on the raw disk with sgdisk and that the disk formats
// hold no zeros for it, then boots the qcow2 twice: the first boot
// formats the partition and the service writes a file into it; after a
// power-off the second boot finds the file and does not format again.
// The kernel+initrd boot, with no disk, runs the service on a tmpfs.
func TestVolumeSurvivesPowerOffSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	tooltest.Need(t, "sgdisk")
	dir := t.TempDir()
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{volumeSpec(t, dir)}, Dir: dir, Arch: []string{"amd64"},
	}); err != nil {
		t.Fatalf("building: %v", err)
	}
	raw := filepath.Join(dir, "vol-amd64-efi.raw")
	out := tool(t, "sgdisk", "-p", raw)
	// Partition 2: 256 MiB = 524288 sectors, Linux filesystem (8300), named data.
	if !regexp.MustCompile(`(?m)^\s+2\s+\d+\s+\d+\s+256\.0 MiB\s+8300\s+data$`).MatchString(out) {
		t.Errorf("sgdisk -p shows no 256 MiB Linux partition named data:\n%s", out)
	}
	tool(t, "sgdisk", "-v", raw)
	var st syscall.Stat_t
	if err := syscall.Stat(raw, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > st.Size-200<<20 {
		t.Errorf("the raw disk has %d of its %d bytes allocated: the volume's partition was written, not left a hole", used, st.Size)
	}
	qcow := filepath.Join(dir, "vol-amd64-efi.qcow2")
	if fi, err := os.Stat(qcow); err != nil || fi.Size() > 200<<20 {
		t.Errorf("qcow2: %v, %d bytes: the volume's zeros are stored", err, fi.Size())
	}

	// keel inspect lists the volume and its partition.
	insp := tool(t, keelBinary(t), "inspect", qcow)
	if want := "volume:      data, 268435456 bytes, mounted at /var/lib/keel/volumes/data (GPT partition 2, 268435456 bytes)"; !strings.Contains(insp, want) {
		t.Errorf("keel inspect lacks %q:\n%s", want, insp)
	}

	boot := func(t *testing.T, image string) (*qemu.Machine, func(*regexp.Regexp)) {
		console, err := os.Create(filepath.Join(dir, "console-"+strings.ReplaceAll(t.Name(), "/", "-")+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { console.Close() })
		m, err := qemu.Start(context.Background(), qemu.Options{Image: image, Mem: 1024, Console: console, Timeout: 14 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("console:\n%s", tail(m.Console(), 6000))
			}
			m.Kill()
		})
		return m, func(re *regexp.Regexp) {
			t.Helper()
			match, err := m.Expect(re, 6*time.Minute)
			if err != nil {
				t.Fatalf("waiting for %q: %v", re, err)
			}
			t.Logf("console: %s", match[0])
		}
	}
	powerOff := func(t *testing.T, m *qemu.Machine, expect func(*regexp.Regexp)) {
		if err := m.Powerdown(); err != nil {
			t.Fatal(err)
		}
		expect(milestone("shutdown-done"))
		if err := m.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	mounted := regexp.MustCompile(`keel: volume data: /dev/vda\d mounted on /var/lib/keel/volumes/data`)
	t.Run("first boot", func(t *testing.T) {
		m, expect := boot(t, qcow)
		expect(regexp.MustCompile(`keel: volume data: formatted /dev/vda\d as ext4 \(first boot\) in [0-9.]+s`))
		expect(mounted)
		expect(regexp.MustCompile(`(?m)^\[writer\] wrote-note`))
		powerOff(t, m, expect)
	})
	if t.Failed() {
		return
	}
	t.Run("second boot", func(t *testing.T) {
		m, expect := boot(t, qcow)
		expect(mounted)
		expect(regexp.MustCompile(`(?m)^\[writer\] found-kept-42`))
		if strings.Contains(m.Console(), "keel: volume data: formatted") {
			t.Error("the second boot formatted the volume again")
		}
		powerOff(t, m, expect)
	})
	// Without a disk, a tmpfs stands in, and the console says so.
	t.Run("no disk", func(t *testing.T) {
		m, expect := boot(t, filepath.Join(dir, "vol-amd64-kernel"))
		expect(regexp.MustCompile(`keel: warning: volume data: no partition named "data" and no ext4 file system labelled so \(block devices: [^)]*\): a tmpfs of 268435456 bytes stands in, and its data is lost at power-off`))
		expect(regexp.MustCompile(`(?m)^\[writer\] wrote-note`))
		powerOff(t, m, expect)
	})
}
