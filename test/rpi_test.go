package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/tooltest"
)

var rpiBuilt builtImages

// rpiSpec writes examples/rpi-arm64.toml into dir with its relative image
// paths made absolute.
func rpiSpec(t *testing.T, dir string) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(repo, "examples", "rpi-arm64.toml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "rpi-arm64.toml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(example), `"../`, `"`+repo+`/`)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rpiImage builds examples/rpi-arm64.toml once for the tests of this run,
// through the CLI (as the second build of TestRPiImageSlow is: the keel
// version recorded in the image is the binary's), and returns the path
// of its rpi image.
func rpiImage(t *testing.T) string {
	t.Helper()
	testenv.NeedNetwork(t)
	b := &rpiBuilt
	b.once.Do(func() {
		b.dir, b.err = runTempDir("keel-e2e-rpi-")
		if b.err != nil {
			return
		}
		start := time.Now()
		out, err := exec.Command(keelBinary(t), "build", "--dir", b.dir, rpiSpec(t, b.dir)).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("%w\n%s", err, out)
		}
		t.Logf("built the rpi example in %v", time.Since(start).Round(time.Second))
	})
	if b.err != nil {
		t.Fatalf("building examples/rpi-arm64.toml: %v", b.err)
	}
	return filepath.Join(b.dir, "rpi-arm64-rpi.img")
}

// TestRPiRefusesAmd64 asks for the rpi format on amd64: the build stops
// at once, naming the format.
func TestRPiRefusesAmd64(t *testing.T) {
	dir := t.TempDir()
	_, err := build.Run(context.Background(), build.Options{
		Specs: []string{rpiSpec(t, dir)}, Dir: dir, Arch: []string{"amd64"}, CacheDir: filepath.Join(dir, "cache"),
	})
	if err == nil || !strings.Contains(err.Error(), `"rpi"`) || !strings.Contains(err.Error(), "arm64 only") {
		t.Fatalf("rpi on amd64: err = %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "cache")); statErr == nil {
		t.Error("the refused build opened a cache: it should stop before building anything")
	}
}

// rpiBootFiles are what the Pi firmware and EEPROM need on the boot
// partition for a Pi 4 and a Pi 5.
var rpiBootFiles = []string{"config.txt", "cmdline.txt", "start4.elf", "fixup4.dat",
	"bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb", "vmlinuz", "initrd.img", "LICENCE.broadcom"}

// TestRPiImageSlow builds examples/rpi-arm64.toml and checks the image
// with tools keel did not write: sfdisk and fdisk read an MBR with one
// bootable FAT32 (LBA) partition at 4 MiB, fsck.vfat finds the volume
// clean, mtools lists and reads the boot files, and dtc shows that the
// consoles of cmdline.txt are those the Pi 4 and Pi 5 device trees name;
// keel inspect reads the image.
// A second build, through the CLI in another time zone and umask, gives
// the same bytes.
func TestRPiImageSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	img := rpiImage(t)
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", filepath.Base(img), st.Size())

	dump := tool(t, "sfdisk", "-d", img)
	m := regexp.MustCompile(`rpi-arm64-rpi\.img1 : start=\s*(\d+), size=\s*(\d+), type=c, bootable`).FindStringSubmatch(dump)
	if !strings.Contains(dump, "label: dos") || m == nil || m[1] != "8192" {
		t.Fatalf("sfdisk -d: want a DOS label with one bootable type-c partition at sector 8192:\n%s", dump)
	}
	if strings.Count(dump, "start=") != 1 {
		t.Errorf("sfdisk -d: more than one partition:\n%s", dump)
	}
	if out := tool(t, "fdisk", "-l", img); !strings.Contains(out, "W95 FAT32 (LBA)") || !strings.Contains(out, "Disklabel type: dos") {
		t.Errorf("fdisk -l:\n%s", out)
	}
	var sectors int64
	fmt.Sscan(m[2], &sectors)
	part := extract(t, img, 8192*512, sectors*512)
	if out := tool(t, "fsck.vfat", "-n", part); !strings.Contains(out, "files") {
		t.Errorf("fsck.vfat -n: %s", out)
	}
	if out := tool(t, "fsck.vfat", "-n", "-v", part); !strings.Contains(out, "32 bit entries") || !strings.Contains(out, "8192 hidden sectors") {
		t.Errorf("the boot volume is not FAT32 counting the 8192 sectors before it:\n%s", out)
	}
	ls := tool(t, "mdir", "-b", "-i", part, "::/")
	for _, name := range rpiBootFiles {
		if !strings.Contains(ls, "::/"+name+"\n") {
			t.Errorf("boot partition has no %s:\n%s", name, ls)
		}
	}
	read := func(name string) string { return tool(t, "mtype", "-i", part, "::/"+name) }
	config := read("config.txt")
	for _, line := range []string{"arm_64bit=1", "kernel=vmlinuz", "initramfs initrd.img followkernel", "enable_uart=1"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).MatchString(config) {
			t.Errorf("config.txt has no line %q:\n%s", line, config)
		}
	}
	cmdline := strings.TrimSpace(read("cmdline.txt"))
	if strings.Contains(cmdline, "\n") || !strings.Contains(cmdline, "panic=10") {
		t.Errorf("cmdline.txt = %q", cmdline)
	}

	// The consoles: each board's device tree names its serial port by an
	// alias in /chosen/stdout-path; cmdline.txt must name that port.
	if _, err := exec.LookPath("dtc"); err == nil {
		for dtb, console := range map[string]string{"bcm2711-rpi-4-b.dtb": "ttyS1", "bcm2712-rpi-5-b.dtb": "ttyAMA10"} {
			p := filepath.Join(t.TempDir(), dtb)
			tool(t, "mcopy", "-n", "-i", part, "::/"+dtb, p)
			dts := tool(t, "dtc", "-q", "-I", "dtb", "-O", "dts", p)
			sp := regexp.MustCompile(`stdout-path = "serial(\d+):115200n8"`).FindStringSubmatch(dts)
			if sp == nil {
				t.Errorf("%s: no stdout-path", dtb)
				continue
			}
			want := "console=" + console + ",115200"
			if !strings.HasSuffix(console, sp[1]) || !strings.Contains(cmdline, want) {
				t.Errorf("%s: stdout-path is serial%s; cmdline.txt %q should name %s", dtb, sp[1], cmdline, want)
			}
		}
	} else {
		t.Log("dtc not installed: the console names are not checked against the device trees")
	}

	// keel inspect finds the root in initrd.img on the boot partition.
	keel := keelBinary(t)
	if out := tool(t, keel, "inspect", img); !strings.Contains(out, "format:      rpi (") || !strings.Contains(out, `name = "rpi"`) {
		t.Errorf("keel inspect:\n%s", out)
	}

	// The second build: the CLI, another output directory, time zone and
	// umask, the same bytes.
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", "umask 077 && exec \"$@\"", "sh", keel, "build", "--dir", filepath.Join(dir, "out"), rpiSpec(t, dir))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TZ=Pacific/Chatham")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	a, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "rpi-arm64-rpi.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("two builds differ: sha256 %x vs %x", sha256.Sum256(a), sha256.Sum256(b))
	}
}

// TestBootRPiRaspi3bSlow boots what the rpi image's boot partition holds
// on QEMU's Raspberry Pi 3 model B: the kernel, the zstd initramfs and the
// bcm2837-rpi-3-b.dtb taken out of the image, with cmdline.txt as the
// command line, the console on the second serial port (the mini UART,
// ttyS1, the GPIO UART of a Pi 3 and 4). keel's init starts, loads its
// modules, runs onboot and starts the services; getty offers a login.
//
// What this does not cover: QEMU 7.2 has no Pi 4 or Pi 5 model and does
// not run the GPU firmware, so config.txt, start4.elf and the EEPROM's
// reading of the FAT partition are only checked by the tools above. The
// board has no network, so dhcpcd's onboot run fails, which the test
// accepts.
func TestBootRPiRaspi3bSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	tooltest.Need(t, "qemu-system-aarch64")
	img := rpiImage(t)
	dir := t.TempDir()
	st := tool(t, "sfdisk", "-d", img)
	if !strings.Contains(st, "start=        8192") {
		t.Fatalf("sfdisk -d: boot partition not at sector 8192:\n%s", st)
	}
	at := img + "@@4M"
	for _, f := range []string{"vmlinuz", "initrd.img", "bcm2837-rpi-3-b.dtb", "cmdline.txt"} {
		tool(t, "mcopy", "-n", "-i", at, "::/"+f, filepath.Join(dir, f))
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline.txt"))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	q := exec.CommandContext(ctx, "qemu-system-aarch64", "-M", "raspi3b",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "initrd.img"),
		"-dtb", filepath.Join(dir, "bcm2837-rpi-3-b.dtb"), "-append", strings.TrimSpace(string(cmdline)),
		"-serial", "null", "-serial", "file:"+logPath, "-display", "none", "-monitor", "none", "-no-reboot")
	var qout bytes.Buffer
	q.Stdout, q.Stderr = &qout, &qout
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Wait() }()
	defer func() {
		q.Process.Kill()
		<-done
	}()
	console := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	defer func() {
		if t.Failed() {
			t.Logf("qemu: %s\nconsole:\n%s", qout.String(), tail(console(), 6000))
		}
	}()
	start := time.Now()
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`Machine model: Raspberry Pi 3 Model B`),
		regexp.MustCompile(`Kernel command line: ` + regexp.QuoteMeta(strings.TrimSpace(string(cmdline)))),
		regexp.MustCompile(`console \[ttyS1\] enabled`),
		regexp.MustCompile(`keel: milestone init `),
		milestone("modules-loaded"),
		regexp.MustCompile(`keel: onboot sysctl: exited 0`),
		milestone("onboot-done"),
		milestone("services-running"),
		regexp.MustCompile(`keel-rpi login:`),
	} {
		for !re.MatchString(console()) {
			select {
			case err := <-done:
				done <- err
				t.Fatalf("qemu exited (%v) before %q", err, re)
			case <-time.After(500 * time.Millisecond):
			}
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %q", re)
			}
		}
		t.Logf("%6.1fs  %s", time.Since(start).Seconds(), re)
	}
	if f := regexp.MustCompile(`Kernel panic[^\n]*`).FindString(console()); f != "" {
		t.Errorf("console: %s", f)
	}
}
