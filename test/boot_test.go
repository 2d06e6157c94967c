// Package test holds keel's end-to-end tests: they build images with the
// real pipeline (real Debian mirror, real package builds) and boot them
// under QEMU, asserting on the serial console.
package test

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// referenceServices are the services of ../build.toml.
var referenceServices = []string{"getty", "ntpd", "sshd"} // as keel-ctl ps sorts them

type builtImages struct {
	once sync.Once
	dir  string
	err  error
}

var reference = map[string]*builtImages{"amd64": {}, "arm64": {}}

// referenceImages builds ../build.toml once per architecture for all the
// boot tests of this run.
func referenceImages(t *testing.T, arch string, formats ...string) string {
	t.Helper()
	testenv.NeedNetwork(t)
	b := reference[arch]
	b.once.Do(func() {
		b.dir, b.err = runTempDir("keel-e2e-" + arch + "-")
		if b.err != nil {
			return
		}
		_, b.err = build.Run(context.Background(), build.Options{
			Specs:   []string{"../build.toml"},
			Dir:     b.dir,
			Arch:    []string{arch},
			Formats: formats,
		})
	})
	if b.err != nil {
		t.Fatalf("building the reference image for %s: %v", arch, b.err)
	}
	return b.dir
}

var amd64Formats = []string{"kernel+initrd", "iso-efi", "iso-bios", "iso", "raw-efi", "qcow2-efi",
	"raw-bios", "qcow2-bios", "raw", "vhd", "dynamic-vhd", "vhdx", "vmdk", "ova", "gce", "aws"}

func TestBootReferenceAmd64KernelInitrdSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-kernel"), true)
}

func TestBootReferenceAmd64ISOEFISlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-efi.iso"), false)
}

func TestBootReferenceAmd64RawEFISlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-efi.raw"), false)
}

func TestBootReferenceAmd64Qcow2EFISlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-efi.qcow2"), false)
}

// iso-bios boots through SeaBIOS and ISOLINUX; iso holds both El Torito
// entries and boots through either firmware.
func TestBootReferenceAmd64ISOBIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-bios.iso"), false)
}

func TestBootReferenceAmd64ISOBothSeaBIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.iso"), false, seaBIOS)
}

func TestBootReferenceAmd64ISOBothOVMFSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.iso"), false)
}

// The same iso as a USB stick: its hybrid MBR, under either firmware.
func TestBootReferenceAmd64ISOAsUSBSeaBIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.iso"), false, func(o *qemu.Options) {
		bios := false
		o.UEFI, o.USB = &bios, true
	})
}

func TestBootReferenceAmd64ISOAsUSBOVMFSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.iso"), false, func(o *qemu.Options) { o.USB = true })
}

// raw-bios and qcow2-bios boot through SeaBIOS and GRUB's core image;
// raw boots through either firmware from the same disk.
func TestBootReferenceAmd64RawBIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-bios.raw"), false)
}

func TestBootReferenceAmd64Qcow2BIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-bios.qcow2"), false)
}

func TestBootReferenceAmd64RawBothSeaBIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.raw"), false, seaBIOS)
}

func TestBootReferenceAmd64RawBothOVMFSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.raw"), false)
}

func seaBIOS(o *qemu.Options) {
	bios := false
	o.UEFI = &bios
}

// The VM and cloud formats hold the raw disk, which boots through either
// firmware; QEMU reads VHD and VMDK itself. The VHD boots as on Azure's
// first generation (a BIOS), the VMDK as the OVA asks (EFI).
func TestBootReferenceAmd64VHDSeaBIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.vhd"), false, seaBIOS)
}

func TestBootReferenceAmd64VMDKSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64.vmdk"), false)
}

// The whole-GiB cloud disk: the aws output, byte for byte the disk.raw of
// the gce one (TestCloudFormatsPassExternalChecks compares them), booted
// as EC2 and Compute Engine boot an image not marked for UEFI.
func TestBootReferenceAmd64CloudDiskSeaBIOSSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "amd64", amd64Formats...)
	bootReference(t, filepath.Join(dir, "host-amd64-aws.raw"), false, seaBIOS)
}

func TestBootReferenceArm64RawEFISlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "arm64", "raw-efi")
	bootReference(t, filepath.Join(dir, "host-arm64-efi.raw"), false)
}

// uBootArm64 is U-Boot for QEMU's virt machine, from Debian's
// u-boot-qemu: its EFI loader is what arm64 boards without a UEFI
// firmware of their own boot EFI/BOOT/BOOTAA64.EFI with.
const uBootArm64 = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

func TestBootReferenceArm64RawEFIUBootSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := referenceImages(t, "arm64", "raw-efi")
	bootReference(t, filepath.Join(dir, "host-arm64-efi.raw"), false, func(o *qemu.Options) { o.Firmware = uBootArm64 })
}

func milestone(name string) *regexp.Regexp {
	return regexp.MustCompile(`keel: milestone ` + regexp.QuoteMeta(name) + ` ([0-9.]+)`)
}

// bootReference boots one output of the reference image and checks, on
// the serial console, that init started, onboot ran in order, every
// service runs in its own container, a killed service is restarted (when
// exercise is set) and the machine powers off cleanly.
func bootReference(t *testing.T, image string, exercise bool, opts ...func(*qemu.Options)) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	console, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Several tests boot the same file, at once: none may write to it.
	o := qemu.Options{Image: image, Mem: 1024, Console: console, Timeout: 14 * time.Minute, Snapshot: true}
	for _, opt := range opts {
		opt(&o)
	}
	m, err := qemu.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("console of %s:\n%s", filepath.Base(image), tail(m.Console(), 6000))
		}
	}()
	const step = 6 * time.Minute
	expect := func(re *regexp.Regexp) []string {
		t.Helper()
		match, err := m.Expect(re, step)
		if err != nil {
			t.Fatalf("%s: waiting for %q: %v", filepath.Base(image), re, err)
		}
		return match
	}
	start := expect(milestone("init"))
	expect(regexp.MustCompile(`keel: onboot sysctl: exited 0`))
	expect(regexp.MustCompile(`keel: onboot dhcpcd: exited 0`))
	expect(milestone("onboot-done"))
	running := expect(milestone("services-running"))
	t.Logf("%s: init at %ss, all services running at %ss", filepath.Base(image), start[1], running[1])

	// The getty service gives a root shell on the serial console: ask init
	// for the container table through it.
	if err := m.Send("\nkeel-ctl ps\n"); err != nil {
		t.Fatal(err)
	}
	for _, svc := range referenceServices {
		expect(regexp.MustCompile(`(?m)^` + svc + `\s+running\s+\d+`))
	}
	// Each service is in its own PID namespace: its processes see a
	// different /proc/1 than init.
	if err := m.Send("for s in sshd ntpd; do echo ns-$s-$(readlink /proc/$(keel-ctl pid $s)/ns/pid); done; echo ns-init-$(readlink /proc/1/ns/pid)\n"); err != nil {
		t.Fatal(err)
	}
	sshdNS := expect(regexp.MustCompile(`ns-sshd-(pid:\[\d+\])`))[1]
	ntpdNS := expect(regexp.MustCompile(`ns-ntpd-(pid:\[\d+\])`))[1]
	initNS := expect(regexp.MustCompile(`ns-init-(pid:\[\d+\])`))[1]
	if sshdNS == initNS || ntpdNS == initNS || sshdNS == ntpdNS {
		t.Errorf("services share PID namespaces: sshd %s, ntpd %s, init %s", sshdNS, ntpdNS, initNS)
	}

	// Every service runs under a seccomp filter: the default profile.
	if err := m.Send("for s in " + strings.Join(referenceServices, " ") + "; do echo seccomp-$s-$(awk '/^Seccomp:/ {print $2}' /proc/$(keel-ctl pid $s)/status); done\n"); err != nil {
		t.Fatal(err)
	}
	for _, svc := range referenceServices {
		expect(regexp.MustCompile(`seccomp-` + svc + `-2\b`))
	}

	if exercise {
		// dhcpcd's one-shot run configured QEMU user-net's address and
		// its DNS server.
		if err := m.Send("ip -4 addr show eth0 | grep -o 'inet [0-9./]*'; grep nameserver /etc/resolv.conf\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`inet 10\.0\.2\.15/24`))
		expect(regexp.MustCompile(`nameserver 10\.0\.2\.3`))
		// And names resolve through it: the Debian mirror's host, which
		// this machine's own resolver knows since it builds from there.
		if host := mirrorHost(t); host != "" {
			if err := m.Send("nslookup " + host + "\n"); err != nil {
				t.Fatal(err)
			}
			expect(regexp.MustCompile(`Name:\s+` + regexp.QuoteMeta(host) + `\s+Address:\s*[0-9a-f.:]+`))
		}
		if err := m.Send("kill -9 $(keel-ctl pid ntpd)\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`keel: ntpd: .*; restarting in`))
		if err := m.Send("sleep 3; keel-ctl ps\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`(?m)^ntpd\s+running\s+\d+\s+1\b`))
		// The restarted ntpd is in its own cgroup with build.toml's limits.
		if err := m.Send("cd /sys/fs/cgroup/keel/ntpd && echo cg $(cat memory.max) $(cat cpu.max) $(cat pids.max) && grep -c . cgroup.procs; cd\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`cg 67108864 50000 100000 32\s+[1-9]`))
	}

	if o.Firmware != "" {
		// A firmware given as -bios (U-Boot) hands the kernel a device
		// tree, whose power button (gpio-keys) Debian's cloud kernel has
		// no driver for: power off from the shell, as on a board.
		if err := m.Send("keel-ctl poweroff\n"); err != nil {
			t.Fatal(err)
		}
	} else if err := m.Powerdown(); err != nil {
		t.Fatal(err)
	}
	expect(milestone("shutdown-start"))
	expect(milestone("shutdown-done"))
	if err := m.Wait(); err != nil {
		t.Fatalf("%s: %v", filepath.Base(image), err)
	}
}

// mirrorHost is the host name of the Debian mirror the build used, or ""
// when it is an IP address (nothing to resolve).
func mirrorHost(t *testing.T) string {
	t.Helper()
	mirror, err := debian.MirrorFromHost()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(mirror)
	if err != nil {
		t.Fatal(err)
	}
	if net.ParseIP(u.Hostname()) != nil {
		return ""
	}
	return u.Hostname()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
