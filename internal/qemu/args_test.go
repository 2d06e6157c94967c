package qemu

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/testenv"
)

func TestArgs(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name string
		img  Image
		opts Options
		want []string // substrings the joined command line must hold
		not  []string
	}{
		{
			name: "amd64 kernel",
			img:  Image{Path: "/o/h-amd64-kernel", Format: FormatKernel, Arch: "amd64", UEFI: true, Initrd: "/o/h-amd64-initrd.img", Cmdline: "quiet"},
			opts: Options{Cmdline: "keel.console_log=1", Mem: 512, CPUs: 2},
			want: []string{"qemu-system-x86_64 -M q35 -accel tcg -cpu qemu64 -m 512 -smp 2 ",
				"-kernel /o/h-amd64-kernel -initrd /o/h-amd64-initrd.img -append quiet console=ttyS0 panic=-1 keel.console_log=1"},
			not: []string{"pflash"},
		},
		{
			name: "arm64 kernel",
			img:  Image{Path: "/o/h-arm64-kernel", Format: FormatKernel, Arch: "arm64"},
			want: []string{"qemu-system-aarch64 -M virt -accel tcg -cpu cortex-a57 -m 1024 -smp 1 ", "-append console=ttyAMA0 panic=-1"},
		},
		{
			name: "amd64 efi qcow2 with disks and ports",
			img:  Image{Path: "/o/h-amd64-efi.qcow2", Format: FormatQcow2, Arch: "amd64", UEFI: true},
			opts: Options{Publish: []string{"2222:22", "5353:53/udp"}},
			want: []string{"if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
				"if=pflash,format=raw,unit=1,file=/tmp/k/efivars.fd",
				"-drive if=none,id=boot,format=qcow2,file=/o/h-amd64-efi.qcow2 -device virtio-blk-pci,drive=boot,bootindex=0",
				"-drive if=none,id=disk0,format=raw,file=/d/a,,b.raw -device virtio-blk-pci,drive=disk0",
				"-netdev user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53 -device virtio-net-pci,netdev=n0,romfile=",
				"-device virtio-rng-pci", "-qmp unix:/tmp/k/qmp.sock,server=on,wait=off"},
		},
		{
			name: "amd64 bios iso",
			img:  Image{Path: "/o/h-amd64-bios.iso", Format: FormatISO, Arch: "amd64"},
			want: []string{"media=cdrom", "-device ide-cd,drive=cd0,bus=ide.0,bootindex=0"},
			not:  []string{"pflash"},
		},
		{
			name: "uefi forced off",
			img:  Image{Path: "/o/h-amd64-efi.raw", Format: FormatRaw, Arch: "amd64", UEFI: true},
			opts: Options{UEFI: &no},
			not:  []string{"pflash"},
		},
		{
			name: "arm64 efi iso",
			img:  Image{Path: "/o/h-arm64-efi.iso", Format: FormatISO, Arch: "arm64", UEFI: true},
			want: []string{"AAVMF_CODE.fd", "-device scsi-cd,drive=cd0,bus=scsi0.0,bootindex=0"},
		},
		{
			name: "amd64 iso as a usb stick under seabios",
			img:  Image{Path: "/o/h-amd64.iso", Format: FormatISO, Arch: "amd64"},
			opts: Options{USB: true},
			want: []string{"-drive if=none,id=usb0,format=raw,readonly=on,file=/o/h-amd64.iso", "-device usb-storage,bus=xhci.0,drive=usb0,bootindex=0"},
			not:  []string{"pflash", "ide-cd"},
		},
		{
			name: "arm64 raw under u-boot",
			img:  Image{Path: "/o/h-arm64-efi.raw", Format: FormatRaw, Arch: "arm64", UEFI: true},
			opts: Options{Firmware: "/fw/u-boot.bin", Snapshot: true},
			want: []string{"-bios /fw/u-boot.bin", "-drive if=none,id=boot,format=raw,snapshot=on,file=/o/h-arm64-efi.raw"},
			not:  []string{"pflash", "AAVMF"},
		},
		{
			name: "uki",
			img:  Image{Path: "/o/h-amd64.efi", Format: FormatUKI, Arch: "amd64", UEFI: true},
			want: []string{"file=fat:/tmp/k/esp", "OVMF_CODE_4M.fd"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &plan{img: tc.img, opts: tc.opts, accel: "tcg", dir: "/tmp/k", vars: "/tmp/k/efivars.fd", esp: "/tmp/k/esp"}
			if strings.Contains(tc.name, "disks") {
				p.disks = []Disk{{Path: "/d/a,b.raw", Format: "raw"}}
			}
			args, err := p.args()
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("command line lacks %q:\n%s", w, line)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(line, n) {
					t.Errorf("command line holds %q:\n%s", n, line)
				}
			}
		})
	}
}

func TestArgsRejects(t *testing.T) {
	for name, p := range map[string]*plan{
		"arm64 bios": {img: Image{Path: "x-arm64-bios.raw", Format: FormatRaw, Arch: "arm64"}},
		"bad port":   {img: Image{Path: "k", Format: FormatKernel, Arch: "amd64"}, opts: Options{Publish: []string{"22"}}},
		"bad proto":  {img: Image{Path: "k", Format: FormatKernel, Arch: "amd64"}, opts: Options{Publish: []string{"1:2/sctp"}}},
		"bad arch":   {img: Image{Path: "k", Format: FormatKernel, Arch: "riscv64"}},
	} {
		if args, err := p.args(); err == nil {
			t.Errorf("%s: args = %v, want an error", name, args)
		}
	}
}

// TestQEMUAcceptsCommandLineSlow starts QEMU for each image kind keel boots
// from a disk and checks over QMP that QEMU came up with the command line
// (the guests have nothing to boot; only QEMU's acceptance is tested).
func TestQEMUAcceptsCommandLineSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	dir := t.TempDir()
	write := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	qcow := filepath.Join(dir, "x-amd64-efi.qcow2")
	if err := createDisk(Disk{Path: qcow, Size: 64 << 20, Format: "qcow2"}); err != nil {
		t.Fatal(err)
	}
	images := []string{
		write("x-amd64-efi.iso", isoImage()),
		write("x-amd64-bios.iso", isoImage()),
		write("x-amd64-efi.raw", mbrDisk()),
		write("x-amd64-bios.raw", mbrDisk()),
		write("x-amd64.efi", peImage(0x8664)),
		qcow,
		write("x-arm64-efi.raw", mbrDisk()),
		write("x-arm64-efi.iso", isoImage()),
	}
	userData := write("user-data", []byte("#cloud-config\n"))
	for _, img := range images {
		t.Run(filepath.Base(img), func(t *testing.T) {
			m, err := Start(context.Background(), Options{
				Image:    img,
				Metadata: userData,
				Disks:    []Disk{{Path: filepath.Join(t.TempDir(), "extra.raw"), Size: 16 << 20}},
				Publish:  []string{freePort(t) + ":22"},
				Timeout:  30 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Kill()
			if err := m.qmp("query-status"); err != nil {
				t.Fatalf("QEMU did not come up: %v\ncommand line: %v", err, m.Cmdline())
			}
			if err := m.Powerdown(); err != nil {
				t.Errorf("Powerdown: %v", err)
			}
			if !slices.Contains(m.Cmdline(), "-qmp") {
				t.Errorf("Cmdline() = %v", m.Cmdline())
			}
		})
	}
}

// freePort is a loopback TCP port nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func TestHasVirtFlag(t *testing.T) {
	for _, tc := range []struct {
		cpuinfo string
		want    bool
	}{
		{"processor\t: 0\nflags\t\t: fpu vme de pse vmx sse\n", true},
		{"processor\t: 0\nflags\t\t: fpu svm lm\n", true},
		{"processor\t: 0\nflags\t\t: fpu vme de pse hypervisor lm\nvmx flags\t: ept\n", false},
		{"", false},
	} {
		if got := hasVirtFlag(tc.cpuinfo); got != tc.want {
			t.Errorf("hasVirtFlag(%q) = %v, want %v", tc.cpuinfo, got, tc.want)
		}
	}
}

func TestKernelCmdline(t *testing.T) {
	for _, tc := range []struct{ image, extra, want string }{
		{"", "", "console=ttyS0 panic=-1"},
		{"console=tty0 console=ttyS0 panic=-1", "", "console=tty0 console=ttyS0 panic=-1"},
		{"console=ttyS0 console=tty0 quiet", "debug", "console=ttyS0 console=tty0 quiet console=ttyS0 panic=-1 debug"},
		{"panic=10", "", "panic=10 console=ttyS0"},
	} {
		if got := kernelCmdline(tc.image, "ttyS0", tc.extra); got != tc.want {
			t.Errorf("kernelCmdline(%q, %q) = %q, want %q", tc.image, tc.extra, got, tc.want)
		}
	}
}
