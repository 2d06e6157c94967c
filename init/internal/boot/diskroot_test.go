package boot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDiskRoot(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		want    DiskRoot
		err     string
	}{
		{"console=ttyS0 panic=-1", DiskRoot{}, ErrNoDiskRoot.Error()},
		{"console=ttyS0 keel.root=PARTLABEL=keel-root-0123 keel.rootfstype=squashfs",
			DiskRoot{Source: "PARTLABEL=keel-root-0123", FSType: "squashfs", Wait: DefaultRootWait}, ""},
		{"keel.rootfstype=erofs keel.root=/dev/vdb keel.rootwait=2.5",
			DiskRoot{Source: "/dev/vdb", FSType: "erofs", Wait: 2500 * time.Millisecond}, ""},
		{"keel.root=PARTLABEL=x", DiskRoot{}, `keel.rootfstype="": want squashfs or erofs`},
		{"keel.root=PARTLABEL=x keel.rootfstype=ext4", DiskRoot{}, "want squashfs or erofs"},
		{"keel.root=UUID=1234 keel.rootfstype=erofs", DiskRoot{}, "want PARTLABEL=NAME or /dev/PATH"},
		{"keel.root=/dev/vda2 keel.rootfstype=erofs keel.rootwait=soon", DiskRoot{}, "keel.rootwait=soon"},
		{"keel.root=/dev/vda2 keel.rootfstype=erofs keel.rootwait=NaN", DiskRoot{}, "keel.rootwait=NaN"},
		{"keel.root=/dev/vda2 keel.rootfstype=erofs keel.rootwait=+Inf", DiskRoot{}, "keel.rootwait=+Inf"},
	} {
		got, err := ParseDiskRoot(c.cmdline)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.cmdline, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.cmdline, got, err, c.want)
		}
	}
	if _, err := ParseDiskRoot(""); !errors.Is(err, ErrNoDiskRoot) {
		t.Errorf("no keel.root: %v, want ErrNoDiskRoot", err)
	}
}

// fakeSysBlock lays out /sys/class/block as the kernel does: one
// directory per disk and partition, each with a uevent file.
func fakeSysBlock(t *testing.T, devs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, uevent := range devs {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "uevent"), []byte(uevent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindBlockDevice(t *testing.T) {
	sys := fakeSysBlock(t, map[string]string{
		"vda":  "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=1\n",
		"vda1": "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=EFI System Partition\n",
		"vda2": "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=keel-root-0123\n",
	})
	for source, want := range map[string]string{
		"PARTLABEL=keel-root-0123":       "/dev/vda2",
		"PARTLABEL=EFI System Partition": "/dev/vda1",
		"/dev/vda":                       "/dev/vda",
		"PARTLABEL=keel-root-9999":       "",
		"/dev/sda1":                      "",
	} {
		dev, ok, err := FindBlockDevice(sys, source)
		if err != nil || ok != (want != "") || dev != want {
			t.Errorf("%s: %q %v %v, want %q", source, dev, ok, err, want)
		}
	}
}

// TestWaitBlockDeviceTimesOut: a root that never appears is reported
// with what was waited for and what there is.
func TestWaitBlockDeviceTimesOut(t *testing.T) {
	sys := fakeSysBlock(t, map[string]string{
		"vda":  "DEVNAME=vda\nDEVTYPE=disk\n",
		"vda2": "DEVNAME=vda2\nDEVTYPE=partition\nPARTNAME=keel-root-aaaa\n",
	})
	start := time.Now()
	_, err := WaitBlockDevice(sys, "PARTLABEL=keel-root-bbbb", 100*time.Millisecond, 10*time.Millisecond)
	if err == nil {
		t.Fatal("no error for a partition that is not there")
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the wait was over", time.Since(start))
	}
	for _, want := range []string{"PARTLABEL=keel-root-bbbb", "100ms", "vda, vda2 (keel-root-aaaa)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestWaitBlockDeviceSeesLateDevice: a partition that appears while init
// waits (the driver probes the disk asynchronously) is found.
func TestWaitBlockDeviceSeesLateDevice(t *testing.T) {
	sys := fakeSysBlock(t, map[string]string{"vda": "DEVNAME=vda\n"})
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.MkdirAll(filepath.Join(sys, "vda2"), 0o755)
		os.WriteFile(filepath.Join(sys, "vda2", "uevent"), []byte("DEVNAME=vda2\nPARTNAME=root\n"), 0o644)
	}()
	dev, err := WaitBlockDevice(sys, "PARTLABEL=root", 5*time.Second, 5*time.Millisecond)
	if err != nil || dev != "/dev/vda2" {
		t.Fatalf("%q, %v; want /dev/vda2", dev, err)
	}
}

// FuzzParseDiskRoot: any command line gives either ErrNoDiskRoot, an
// error, or a root init can act on.
func FuzzParseDiskRoot(f *testing.F) {
	f.Add("console=ttyS0 keel.root=PARTLABEL=keel-root-0123 keel.rootfstype=squashfs")
	f.Add("keel.root=/dev/vda2 keel.rootfstype=erofs keel.rootwait=0.5")
	f.Add("keel.root= keel.rootfstype= keel.rootwait=-1")
	f.Fuzz(func(t *testing.T, cmdline string) {
		r, err := ParseDiskRoot(cmdline)
		if err != nil {
			return
		}
		if r.FSType != "squashfs" && r.FSType != "erofs" {
			t.Errorf("%q: file system %q accepted", cmdline, r.FSType)
		}
		if !strings.HasPrefix(r.Source, "PARTLABEL=") && !strings.HasPrefix(r.Source, "/dev/") {
			t.Errorf("%q: source %q accepted", cmdline, r.Source)
		}
		if r.Wait < 0 {
			t.Errorf("%q: negative wait %v", cmdline, r.Wait)
		}
	})
}
