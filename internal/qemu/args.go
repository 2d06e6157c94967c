package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Firmware files of Debian's ovmf and qemu-efi-aarch64 packages.
var firmware = map[string]struct{ code, vars string }{
	"amd64": {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	"arm64": {"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
}

// plan is everything Start decided before building the command line.
type plan struct {
	img       Image
	opts      Options
	accel     string    // "kvm" or "tcg"
	dir       string    // private temp dir: QMP socket, EFI vars copy, ESP
	vars      string    // EFI variable store copy; "" without firmware
	esp       string    // directory served as a FAT drive for a UKI
	metadata  string    // config drive image; "" without
	disks     []Disk    // extra disks, formats resolved
	tpm       *exec.Cmd // swtpm, with Options.TPM
	tpmSocket string    // its control socket
}

func (p *plan) uefi() bool {
	if p.opts.UEFI != nil {
		return *p.opts.UEFI
	}
	return p.img.UEFI
}

func (p *plan) snapshot() string {
	if p.opts.Snapshot {
		return ",snapshot=on"
	}
	return ""
}

// args is the QEMU command line, program first.
func (p *plan) args() ([]string, error) {
	arch := p.img.Arch
	var a []string
	add := func(s ...string) { a = append(a, s...) }
	switch arch {
	case "amd64":
		if p.opts.SecureBoot != nil {
			// SMM: only the firmware may then write the variable store.
			add("qemu-system-x86_64", "-M", "q35,smm=on",
				"-global", "driver=cfi.pflash01,property=secure,value=on",
				"-global", "ICH9-LPC.disable_s3=1")
		} else {
			add("qemu-system-x86_64", "-M", "q35")
		}
		if p.accel == "kvm" {
			add("-accel", "kvm", "-cpu", "host")
		} else {
			// qemu64 boots the Debian cloud kernel as fast as max under TCG
			// here and avoids emulating features (AVX-512, LA57…) guests
			// then spend time probing.
			add("-accel", "tcg", "-cpu", "qemu64")
		}
	case "arm64":
		if p.accel == "kvm" {
			add("qemu-system-aarch64", "-M", "virt,gic-version=host", "-accel", "kvm", "-cpu", "host")
		} else {
			// cortex-a57: -cpu max is about 3× slower under TCG (pointer
			// authentication emulation).
			add("qemu-system-aarch64", "-M", "virt", "-accel", "tcg", "-cpu", "cortex-a57")
		}
	default:
		return nil, fmt.Errorf("architecture %q: want amd64 or arm64", arch)
	}
	mem := p.opts.Mem
	if mem <= 0 {
		mem = 1024
	}
	cpus := p.opts.CPUs
	if cpus <= 0 {
		cpus = 1
	}
	add("-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus))
	// Only what is asked for: no VGA, no default NIC or drives, the serial
	// console on QEMU's stdin/stdout pipes (signal=off: a Ctrl-C byte is
	// the guest's, not QEMU's).
	add("-nodefaults", "-display", "none", "-no-reboot",
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
		"-qmp", "unix:"+filepath.Join(p.dir, "qmp.sock")+",server=on,wait=off")

	if p.opts.Firmware != "" && p.img.Format != FormatKernel {
		add("-bios", p.opts.Firmware)
	} else if p.uefi() && p.img.Format != FormatKernel {
		code := firmware[arch].code
		if p.opts.SecureBoot != nil {
			code = secureBootCode
		}
		add("-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+driveFile(code),
			"-drive", "if=pflash,format=raw,unit=1,file="+driveFile(p.vars))
	} else if arch == "arm64" && p.img.Format != FormatKernel {
		return nil, fmt.Errorf("%s: arm64 boots only through EFI firmware (no BIOS)", p.img.Path)
	}

	console := "ttyS0"
	if arch == "arm64" {
		console = "ttyAMA0"
	}
	switch {
	case p.img.Format == FormatKernel:
		add("-kernel", p.img.Path)
		if p.img.Initrd != "" {
			add("-initrd", p.img.Initrd)
		}
		add("-append", kernelCmdline(p.img.Cmdline, console, p.opts.Cmdline))
	case p.img.Format == FormatUKI:
		// A read-only virtual FAT drive holding the UKI at the removable
		// media path: the firmware finds and starts it with no boot entry.
		add("-drive", "if=none,id=esp,format=raw,readonly=on,file=fat:"+driveFile(p.esp),
			"-device", "virtio-blk-pci,drive=esp,bootindex=0")
	case p.opts.USB:
		// As a stick: an ISO is then read as the disk its hybrid MBR
		// makes of it.
		drive := "if=none,id=usb0,format=" + string(p.img.Format) + p.snapshot()
		if p.img.Format == FormatISO {
			// Read-only like the CD it also is, so other machines may
			// boot the same file at once.
			drive = "if=none,id=usb0,format=raw,readonly=on"
		}
		add("-drive", drive+",file="+driveFile(p.img.Path),
			"-device", "qemu-xhci,id=xhci", "-device", "usb-storage,bus=xhci.0,drive=usb0,bootindex=0")
	case p.img.Format == FormatISO:
		add("-drive", "if=none,id=cd0,media=cdrom,format=raw,readonly=on,file="+driveFile(p.img.Path))
		if arch == "amd64" {
			// q35's AHCI: both SeaBIOS and OVMF boot El Torito from it.
			add("-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=0")
		} else {
			add("-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,drive=cd0,bus=scsi0.0,bootindex=0")
		}
	default:
		add("-drive", "if=none,id=boot,format="+string(p.img.Format)+p.snapshot()+",file="+driveFile(p.img.Path),
			"-device", "virtio-blk-pci,drive=boot,bootindex=0")
	}
	if p.metadata != "" {
		add("-drive", "if=none,id=cidata,format=raw,readonly=on,file="+driveFile(p.metadata),
			"-device", "virtio-blk-pci,drive=cidata")
	}
	for i, d := range p.disks {
		id := "disk" + strconv.Itoa(i)
		add("-drive", "if=none,id="+id+",format="+d.Format+",file="+driveFile(d.Path),
			"-device", "virtio-blk-pci,drive="+id)
	}

	if p.tpmSocket != "" {
		dev := "tpm-tis"
		if arch == "arm64" {
			dev = "tpm-tis-device"
		}
		add("-chardev", "socket,id=chrtpm,path="+p.tpmSocket,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", dev+",tpmdev=tpm0")
	}

	netdev := "user,id=n0"
	for _, pub := range p.opts.Publish {
		fwd, err := hostfwd(pub)
		if err != nil {
			return nil, err
		}
		netdev += ",hostfwd=" + fwd
	}
	// romfile= drops iPXE: the firmware would otherwise try network boot.
	add("-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile=",
		"-device", "virtio-rng-pci")
	return a, nil
}

// driveFile escapes a path for a -drive option list, where a comma must
// be doubled.
func driveFile(path string) string { return strings.ReplaceAll(path, ",", ",,") }

// hostfwd turns "HOST:GUEST" (optionally "/tcp" or "/udp") into a QEMU
// hostfwd rule bound to the loopback address.
func hostfwd(pub string) (string, error) {
	spec, proto, _ := strings.Cut(pub, "/")
	if proto == "" {
		proto = "tcp"
	}
	host, guest, ok := strings.Cut(spec, ":")
	if !ok || proto != "tcp" && proto != "udp" || !isPort(host) || !isPort(guest) {
		return "", fmt.Errorf("publish %q: want HOST:GUEST ports, optionally /tcp or /udp", pub)
	}
	return fmt.Sprintf("%s:127.0.0.1:%s-:%s", proto, host, guest), nil
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536 && strconv.Itoa(n) == s
}

// chooseAccel resolves Options.Accel: KVM only for a guest of the host's
// architecture, when /dev/kvm can be opened and, on x86, when the CPU
// offers hardware virtualization.
func chooseAccel(want, arch string) (string, error) {
	switch want {
	case "tcg":
		return "tcg", nil
	case "kvm":
		if arch != runtime.GOARCH {
			return "", fmt.Errorf("accel kvm: guest %s differs from host %s", arch, runtime.GOARCH)
		}
		return "kvm", nil
	case "":
		if arch != runtime.GOARCH || !KVMUsable() {
			return "tcg", nil
		}
		return "kvm", nil
	default:
		return "", fmt.Errorf("accel %q: want kvm, tcg or empty", want)
	}
}

// KVMUsable reports whether /dev/kvm can run an ordinary guest. An x86
// host whose CPU flags lack vmx and svm may still have a /dev/kvm (a
// paravirtual one such as kvm-pvm, inside a cloud sandbox) that opens
// but cannot run an unmodified kernel: the guest stalls without a word
// on its console, so such a host gets TCG.
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	if runtime.GOARCH != "amd64" {
		return true
	}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	return err == nil && hasVirtFlag(string(cpuinfo))
}

// hasVirtFlag reports whether a /proc/cpuinfo lists vmx or svm.
func hasVirtFlag(cpuinfo string) bool {
	for line := range strings.Lines(cpuinfo) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// kernelCmdline is the image's command line with the serial console last
// (the last console= is /dev/console, which init's output goes to) and a
// panic that ends the machine, unless the image says so already, then
// the user's extra arguments.
func kernelCmdline(image, console, extra string) string {
	args := strings.Fields(image)
	lastConsole, panics := "", false
	for _, a := range args {
		if c, ok := strings.CutPrefix(a, "console="); ok {
			lastConsole = c
		}
		panics = panics || strings.HasPrefix(a, "panic=")
	}
	if lastConsole != console {
		args = append(args, "console="+console)
	}
	if !panics {
		args = append(args, "panic=-1")
	}
	return strings.Join(append(args, strings.Fields(extra)...), " ")
}
