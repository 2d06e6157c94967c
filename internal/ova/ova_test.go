package ova

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/tooltest"
	"github.com/keelos/keel/internal/vmdk"
)

const rawSize = 8<<20 + 4096

var mtime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// testDisk writes a small raw disk with scattered data and converts it
// with the vmdk package, as a build would.
func testDisk(t *testing.T, dir, name string) (raw string, disk []byte) {
	t.Helper()
	data := make([]byte, rawSize)
	for i, off := range []int{0, 1 << 20, 5<<20 - 7, rawSize - 512} {
		copy(data[off:], bytes.Repeat([]byte{byte(i + 1), 0x42}, 300))
	}
	raw = filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := vmdk.WriteStreamOptimized(&b, bytes.NewReader(data), rawSize, vmdk.Options{CID: 0xc0ffee, FileName: DiskFileName(name)}); err != nil {
		t.Fatal(err)
	}
	return raw, b.Bytes()
}

func writeOVA(t *testing.T, vm VM, disk []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, vm, bytes.NewReader(disk), int64(len(disk)), rawSize, mtime); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, ova []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(ova))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{h, data})
	}
}

// envelope is the part of the OVF the test checks, by namespace.
type envelope struct {
	XMLName    xml.Name `xml:"http://schemas.dmtf.org/ovf/envelope/1 Envelope"`
	References struct {
		Files []struct {
			Href string `xml:"http://schemas.dmtf.org/ovf/envelope/1 href,attr"`
			ID   string `xml:"http://schemas.dmtf.org/ovf/envelope/1 id,attr"`
			Size int64  `xml:"http://schemas.dmtf.org/ovf/envelope/1 size,attr"`
		} `xml:"File"`
	} `xml:"References"`
	Disks []struct {
		Capacity int64  `xml:"http://schemas.dmtf.org/ovf/envelope/1 capacity,attr"`
		Units    string `xml:"http://schemas.dmtf.org/ovf/envelope/1 capacityAllocationUnits,attr"`
		FileRef  string `xml:"http://schemas.dmtf.org/ovf/envelope/1 fileRef,attr"`
		Format   string `xml:"http://schemas.dmtf.org/ovf/envelope/1 format,attr"`
	} `xml:"DiskSection>Disk"`
	Networks []struct {
		Name string `xml:"http://schemas.dmtf.org/ovf/envelope/1 name,attr"`
	} `xml:"NetworkSection>Network"`
	System struct {
		Name string `xml:"Name"`
		OS   struct {
			ID     int    `xml:"http://schemas.dmtf.org/ovf/envelope/1 id,attr"`
			OSType string `xml:"http://www.vmware.com/schema/ovf osType,attr"`
		} `xml:"OperatingSystemSection"`
		Hardware struct {
			Type  string `xml:"System>VirtualSystemType"`
			Items []struct {
				InstanceID      int    `xml:"InstanceID"`
				ResourceType    int    `xml:"ResourceType"`
				ResourceSubType string `xml:"ResourceSubType"`
				VirtualQuantity int    `xml:"VirtualQuantity"`
				Parent          int    `xml:"Parent"`
				HostResource    string `xml:"HostResource"`
				Connection      string `xml:"Connection"`
			} `xml:"Item"`
			Config []struct {
				Key   string `xml:"http://www.vmware.com/schema/ovf key,attr"`
				Value string `xml:"http://www.vmware.com/schema/ovf value,attr"`
			} `xml:"http://www.vmware.com/schema/ovf Config"`
		} `xml:"VirtualHardwareSection"`
	} `xml:"VirtualSystem"`
}

func parseOVF(t *testing.T, b []byte) envelope {
	t.Helper()
	var env envelope
	if err := xml.Unmarshal(b, &env); err != nil {
		t.Fatalf("OVF does not parse: %v\n%s", err, b)
	}
	return env
}

func TestOVAContents(t *testing.T) {
	dir := t.TempDir()
	vm := VM{Name: "keel-test", CPUs: 2, MemoryMiB: 1024, EFI: true, Arch: "amd64"}
	raw, disk := testDisk(t, dir, vm.Name)
	ova := writeOVA(t, vm, disk)

	entries := readTar(t, ova)
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
		h := e.hdr
		if h.Typeflag != tar.TypeReg || h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 ||
			h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(mtime) || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: header %+v", h.Name, h)
		}
	}
	if want := []string{"keel-test.ovf", "keel-test.mf", "keel-test-disk1.vmdk"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("entries %v, want %v", names, want)
	}
	if !bytes.Equal(entries[2].data, disk) {
		t.Error("the disk in the OVA differs from the VMDK given")
	}

	// Manifest: one SHA256 line per other file, in order, matching.
	mf := regexp.MustCompile(`^SHA256\(([^)]+)\)= ([0-9a-f]{64})$`)
	sc := bufio.NewScanner(bytes.NewReader(entries[1].data))
	var i int
	for ; sc.Scan(); i++ {
		m := mf.FindStringSubmatch(sc.Text())
		if m == nil || i > 1 || m[1] != names[[]int{0, 2}[i]] {
			t.Fatalf("manifest line %q", sc.Text())
		}
		sum := sha256.Sum256(entries[[]int{0, 2}[i]].data)
		if m[2] != hex.EncodeToString(sum[:]) {
			t.Errorf("manifest: %s has SHA-256 %x, manifest says %s", m[1], sum, m[2])
		}
	}
	if i != 2 {
		t.Errorf("manifest has %d lines, want 2", i)
	}

	env := parseOVF(t, entries[0].data)
	if f := env.References.Files; len(f) != 1 || f[0].Href != names[2] || f[0].Size != int64(len(disk)) || f[0].ID != "file1" {
		t.Errorf("References: %+v (disk %d bytes)", f, len(disk))
	}
	if d := env.Disks; len(d) != 1 || d[0].Capacity != rawSize || d[0].Units != "byte" || d[0].FileRef != "file1" ||
		d[0].Format != "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" {
		t.Errorf("DiskSection: %+v", d)
	}
	if len(env.Networks) != 1 || env.Networks[0].Name != "VM Network" {
		t.Errorf("NetworkSection: %+v", env.Networks)
	}
	s := env.System
	if s.Name != "keel-test" || s.OS.ID != 101 || s.OS.OSType != "other4xLinux64Guest" || s.Hardware.Type != "vmx-14" {
		t.Errorf("VirtualSystem: %+v", s)
	}
	byType := map[int]int{} // resource type -> index
	for i, it := range s.Hardware.Items {
		byType[it.ResourceType] = i
	}
	items := s.Hardware.Items
	cpu, mem, ctrl, hd, nic := items[byType[3]], items[byType[4]], items[byType[6]], items[byType[17]], items[byType[10]]
	if len(items) != 5 || cpu.VirtualQuantity != 2 || mem.VirtualQuantity != 1024 ||
		ctrl.ResourceSubType != "VirtualSCSI" || hd.Parent != ctrl.InstanceID || hd.HostResource != "ovf:/disk/vmdisk1" ||
		nic.ResourceSubType != "VmxNet3" || nic.Connection != "VM Network" {
		t.Errorf("hardware items: %+v", items)
	}
	if c := s.Hardware.Config; len(c) == 0 || c[0].Key != "firmware" || c[0].Value != "efi" {
		t.Errorf("vmw:Config: %+v", c)
	}

	// Outside checks: GNU tar lists and extracts the archive as written,
	// and qemu reads the extracted disk as the raw image.
	path := filepath.Join(dir, "keel-test.ova")
	if err := os.WriteFile(path, ova, 0o644); err != nil {
		t.Fatal(err)
	}
	list := strings.Split(strings.TrimSpace(tooltest.Run(t, "tar", "tvf", path)), "\n")
	if len(list) != 3 {
		t.Fatalf("tar tvf:\n%s", strings.Join(list, "\n"))
	}
	for i, l := range list {
		f := strings.Fields(l)
		if len(f) < 6 || f[0] != "-rw-r--r--" || f[1] != "0/0" || f[len(f)-1] != names[i] {
			t.Errorf("tar tvf line %q", l)
		}
	}
	out := filepath.Join(dir, "x")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "tar", "xf", path, "-C", out)
	img := filepath.Join(out, names[2])
	if check := tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", img); !strings.Contains(check, "No errors were found") {
		t.Errorf("qemu-img check:\n%s", check)
	}
	tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, img)
}

func TestArm64(t *testing.T) {
	dir := t.TempDir()
	vm := VM{Name: "keel-arm", CPUs: 4, MemoryMiB: 2048, EFI: true, Arch: "arm64"}
	_, disk := testDisk(t, dir, vm.Name)
	env := parseOVF(t, readTar(t, writeOVA(t, vm, disk))[0].data)
	var ctrl string
	for _, it := range env.System.Hardware.Items {
		if it.ResourceType == 20 {
			ctrl = it.ResourceSubType
		}
	}
	if ctrl != "vmware.nvme.controller" || env.System.OS.OSType != "other5xLinux64Guest" {
		t.Errorf("arm64: controller %q, OS %q", ctrl, env.System.OS.OSType)
	}
	vm.EFI = false
	if err := Write(io.Discard, vm, bytes.NewReader(disk), int64(len(disk)), rawSize, mtime); err == nil {
		t.Error("arm64 with BIOS accepted")
	}
}

func TestBIOS(t *testing.T) {
	dir := t.TempDir()
	vm := VM{Name: "keel-bios", CPUs: 1, MemoryMiB: 512, Arch: "amd64"}
	_, disk := testDisk(t, dir, vm.Name)
	env := parseOVF(t, readTar(t, writeOVA(t, vm, disk))[0].data)
	if c := env.System.Hardware.Config; len(c) != 1 || c[0].Key != "firmware" || c[0].Value != "bios" {
		t.Errorf("vmw:Config: %+v", c)
	}
}

func TestWriteIsReproducible(t *testing.T) {
	dir := t.TempDir()
	vm := VM{Name: "keel", CPUs: 2, MemoryMiB: 2048, EFI: true, Arch: "amd64"}
	_, disk := testDisk(t, dir, vm.Name)
	a, b := writeOVA(t, vm, disk), writeOVA(t, vm, disk)
	if !bytes.Equal(a, b) {
		t.Fatal("two writes differ")
	}
	// The USTAR magic, as the OVF specification asks, not GNU's, and whole
	// 10 KiB records, as GNU tar writes.
	if string(a[257:265]) != "ustar\x0000" || len(a)%10240 != 0 {
		t.Errorf("tar magic %q, length %d", a[257:265], len(a))
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	good := VM{Name: "keel", CPUs: 2, MemoryMiB: 2048, EFI: true, Arch: "amd64"}
	_, disk := testDisk(t, dir, good.Name)
	for _, c := range []struct {
		name     string
		vm       func(*VM)
		disk     []byte
		capacity int64
		want     string
	}{
		{"slash in name", func(v *VM) { v.Name = "a/b" }, disk, rawSize, "VM name"},
		{"empty name", func(v *VM) { v.Name = "" }, disk, rawSize, "VM name"},
		{"arch", func(v *VM) { v.Arch = "riscv64" }, disk, rawSize, "architecture"},
		{"cpus", func(v *VM) { v.CPUs = 0 }, disk, rawSize, "CPUs"},
		{"memory", func(v *VM) { v.MemoryMiB = 1023 }, disk, rawSize, "multiple of 4"},
		{"capacity", func(*VM) {}, disk, rawSize + 512, "capacity"},
		{"not a vmdk", func(*VM) {}, make([]byte, 4096), rawSize, "disk"},
		{"truncated vmdk", func(*VM) {}, disk[:len(disk)-512], rawSize, "truncated"},
	} {
		vm := good
		c.vm(&vm)
		err := Write(io.Discard, vm, bytes.NewReader(c.disk), int64(len(c.disk)), c.capacity, mtime)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}
