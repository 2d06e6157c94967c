package test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/tooltest"
)

// A root on disk: the reference image with [output] root = "squashfs" or
// "erofs", whose system tree is a read-only partition that init mounts
// under a tmpfs overlay.

// diskRootFormats are the outputs the disk-root tests build: the raw EFI
// disk, and qcow2 made from it.
var diskRootFormats = []string{"raw-efi", "qcow2-efi"}

// rootSpec writes a spec overlay that sets [output] root.
func rootSpec(t *testing.T, root string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), root+".toml")
	if err := os.WriteFile(p, []byte("[output]\nroot = \""+root+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// buildDiskRoot builds the reference image for amd64 with its root on
// disk into dir, with the given cache ("" = the default).
func buildDiskRoot(t *testing.T, root, dir, cache string) *build.Result {
	t.Helper()
	testenv.NeedNetwork(t)
	res, err := build.Run(context.Background(), build.Options{
		Specs:    []string{"../build.toml", rootSpec(t, root)},
		Dir:      dir,
		Arch:     []string{"amd64"},
		Formats:  diskRootFormats,
		CacheDir: cache,
	})
	if err != nil {
		t.Fatalf("building the reference image with a %s root: %v", root, err)
	}
	return res
}

var diskRoots = map[string]*builtImages{"squashfs": {}, "erofs": {}}

// diskRootImages builds the reference image with its root on disk once
// per run of the tests.
func diskRootImages(t *testing.T, root string) string {
	t.Helper()
	testenv.NeedNetwork(t)
	b := diskRoots[root]
	b.once.Do(func() {
		if b.dir, b.err = runTempDir("keel-e2e-" + root + "-"); b.err != nil {
			return
		}
		_, b.err = build.Run(context.Background(), build.Options{
			Specs:   []string{"../build.toml", rootSpec(t, root)},
			Dir:     b.dir,
			Arch:    []string{"amd64"},
			Formats: diskRootFormats,
		})
	})
	if b.err != nil {
		t.Fatalf("building the reference image with a %s root: %v", root, b.err)
	}
	return b.dir
}

// syncBuffer collects the console for checks after the boot.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// bootDiskRoot boots a disk-root image through OVMF with the reference
// checks (onboot in order, every service running in its own container, a
// clean power-off), and checks that init found and mounted the root
// partition rather than running from the initramfs.
func bootDiskRoot(t *testing.T, root, image string) {
	var console syncBuffer
	bootReference(t, image, false, func(o *qemu.Options) {
		if o.Console != nil {
			o.Console = io.MultiWriter(o.Console, &console)
		} else {
			o.Console = &console
		}
	})
	re := regexp.MustCompile(`keel: root PARTLABEL=keel-root-[0-9a-f]{16}: ` + root + ` /dev/vda2 mounted read-only under a tmpfs overlay`)
	if !re.MatchString(console.String()) {
		t.Errorf("%s: the console does not show the %s root mounted (want %q):\n%s", filepath.Base(image), root, re, tail(console.String(), 4000))
	}
	if m := regexp.MustCompile(`keel: module [^\n]*`).FindAllString(console.String(), -1); len(m) > 0 {
		t.Errorf("%s: modules failed to load: %q", filepath.Base(image), m)
	}
}

func TestBootSquashfsRootAmd64RawEFISlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := diskRootImages(t, "squashfs")
	bootDiskRoot(t, "squashfs", filepath.Join(dir, "host-amd64-efi.raw"))
}

func TestBootErofsRootAmd64Qcow2EFISlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := diskRootImages(t, "erofs")
	bootDiskRoot(t, "erofs", filepath.Join(dir, "host-amd64-efi.qcow2"))
}

// TestBootMissingDiskRootSlow: when the root partition is not there (here
// renamed with sgdisk), init says on the console what it waited for and
// what block devices there are, instead of hanging or panicking, and the
// machine still powers off cleanly.
func TestBootMissingDiskRootSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	tooltest.Need(t, "sgdisk")
	src := filepath.Join(diskRootImages(t, "squashfs"), "host-amd64-efi.raw")
	image := filepath.Join(t.TempDir(), "host-amd64-efi.raw")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sgdisk", "--change-name=2:not-the-root", image).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m, err := qemu.Start(ctx, qemu.Options{Image: image, Mem: 1024, Timeout: 9 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	expect := func(re string) {
		t.Helper()
		if _, err := m.Expect(regexp.MustCompile(re), 6*time.Minute); err != nil {
			t.Fatalf("waiting for %q: %v\n%s", re, err, tail(m.Console(), 4000))
		}
	}
	expect(`keel: root PARTLABEL=keel-root-[0-9a-f]{16}: no such block device after 30s \(block devices: [^\n]*vda2 \(not-the-root\)\)`)
	expect(`keel: milestone services-running`)
	// init opens the input devices a moment after this milestone, and a
	// press before that reaches nobody: press until shutdown starts.
	for i := 0; ; i++ {
		if err := m.Powerdown(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Expect(regexp.MustCompile(`keel: milestone shutdown-start`), 10*time.Second); err == nil {
			break
		} else if i == 5 {
			t.Fatalf("no shutdown after %d presses of the power button: %v\n%s", i+1, err, tail(m.Console(), 4000))
		}
	}
	expect(`keel: milestone shutdown-done`)
	if err := m.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestReproducibleDiskRootsSlow builds the reference image with each
// root on disk twice, each time with a cache of its own (so every package
// is built afresh), and requires identical outputs: the squashfs and
// erofs images, the initramfs and UKI that boot them, and the disks.
func TestReproducibleDiskRootsSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	t.Parallel()
	var sums []map[string]string
	for i := range 2 {
		work := t.TempDir()
		out := filepath.Join(work, "out")
		cache := filepath.Join(work, "cache")
		for _, root := range []string{"squashfs", "erofs"} {
			buildDiskRoot(t, root, filepath.Join(out, root), cache)
		}
		s := map[string]string{}
		for _, root := range []string{"squashfs", "erofs"} {
			for name, sum := range hashDir(t, filepath.Join(out, root)) {
				s[root+"/"+name] = sum
			}
		}
		sums = append(sums, s)
		if i == 0 && len(s) != 2*(len(diskRootFormats)+1) {
			t.Fatalf("expected %d outputs (the formats and the SBOM per root), got %v", 2*(len(diskRootFormats)+1), s)
		}
	}
	sameOutputs(t, sums[0], sums[1])
}
