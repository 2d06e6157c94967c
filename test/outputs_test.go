package test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestReferenceOutputsPassExternalChecks runs tools keel did not write on
// the reference outputs: qemu-img on the qcow2 (and that it holds exactly
// the raw disk), sgdisk on the GPT, fsck.vfat on the ESP and xorriso on
// the ISO's El Torito catalogue.
//
// It is not parallel so that it runs before the boot tests take the
// CPU.
func TestReferenceOutputsPassExternalChecks(t *testing.T) {
	dir := referenceImages(t, "amd64", amd64Formats...)
	raw := filepath.Join(dir, "host-amd64-efi.raw")
	qcow := filepath.Join(dir, "host-amd64-efi.qcow2")
	biosRaw := filepath.Join(dir, "host-amd64-bios.raw")

	t.Run("qemu-img", func(t *testing.T) {
		for raw, qcow := range map[string]string{raw: qcow, biosRaw: filepath.Join(dir, "host-amd64-bios.qcow2")} {
			out := tool(t, "qemu-img", "check", qcow)
			if !strings.Contains(out, "No errors were found") {
				t.Errorf("qemu-img check %s: %s", filepath.Base(qcow), out)
			}
			tool(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, qcow)
		}
	})

	// Each disk's GPT is sound, its first partition a FAT volume holding
	// what boots; a BIOS disk also has a BIOS boot partition and GRUB's
	// boot code in its MBR.
	t.Run("sgdisk", func(t *testing.T) {
		for _, c := range []struct {
			file, bootType, dir, bootFile string
			bios                          bool
		}{
			{"host-amd64-efi.raw", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "::/EFI/BOOT", "BOOTX64.EFI", false},
			{"host-amd64.raw", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "::/EFI/BOOT", "BOOTX64.EFI", true},
			{"host-amd64-bios.raw", "BC13C2FF-59E6-4262-A352-B275FD6F7172", "::/KEEL", "INITRD.IMG", true},
		} {
			disk := filepath.Join(dir, c.file)
			out := tool(t, "sgdisk", "-v", disk)
			if !strings.Contains(out, "No problems found") {
				t.Errorf("sgdisk -v %s: %s", c.file, out)
			}
			info := tool(t, "sgdisk", "-i", "1", disk)
			if !strings.Contains(info, c.bootType) {
				t.Errorf("%s: partition 1 is not of type %s:\n%s", c.file, c.bootType, info)
			}
			first := regexp.MustCompile(`First sector: (\d+)`).FindStringSubmatch(info)
			last := regexp.MustCompile(`Last sector: (\d+)`).FindStringSubmatch(info)
			if first == nil || last == nil {
				t.Fatalf("sgdisk -i 1 %s: no extent:\n%s", c.file, info)
			}
			start, _ := strconv.ParseInt(first[1], 10, 64)
			end, _ := strconv.ParseInt(last[1], 10, 64)
			esp := extract(t, disk, start*512, (end-start+1)*512)
			out = tool(t, "fsck.vfat", "-n", esp)
			if !strings.Contains(out, "files") {
				t.Errorf("fsck.vfat -n %s: %s", c.file, out)
			}
			if ls := tool(t, "mdir", "-i", esp, "-b", c.dir); !strings.Contains(ls, c.bootFile) {
				t.Errorf("%s: no %s in %s:\n%s", c.file, c.bootFile, c.dir, ls)
			}
			biosPart := strings.Contains(tool(t, "sgdisk", "-p", disk), " EF02 ")
			grub := bytes.Contains(head(t, disk, 440), []byte("GRUB"))
			if biosPart != c.bios || grub != c.bios {
				t.Errorf("%s: BIOS boot partition %v, GRUB in the MBR %v; want %v", c.file, biosPart, grub, c.bios)
			}
		}
	})

	// keel inspect finds the spec, the lock digest and the SBOM in every
	// kind of output.
	t.Run("inspect", func(t *testing.T) {
		keel := keelBinary(t)
		// Each file, by suffix, and the format inspect must recognise in it
		// (the aws disk is the raw disk at whole GiB, named by its suffix
		// as the format table names it).
		for _, c := range []struct{ suffix, format string }{
			{"-kernel", "kernel+initrd"}, {"-efi.iso", "iso-efi"}, {"-bios.iso", "iso-bios"}, {".iso", "iso"},
			{"-efi.raw", "raw-efi"}, {"-efi.qcow2", "qcow2-efi"}, {"-bios.raw", "raw-bios"}, {"-bios.qcow2", "qcow2-bios"},
			{".raw", "raw"}, {".vhd", "vhd"}, {"-dynamic.vhd", "dynamic-vhd"},
			{".vhdx", "vhdx"}, {".vmdk", "vmdk"}, {".ova", "ova"}, {"-gce.tar.gz", "gce"}, {"-aws.raw", "aws"},
		} {
			img := filepath.Join(dir, "host-amd64"+c.suffix)
			out := tool(t, keel, "inspect", img)
			for _, want := range []string{"format:      " + c.format + " (", "name = \"host\"", "build.lock:", "SBOM host-amd64", "image service  sshd", "kernel         linux"} {
				if !strings.Contains(out, want) {
					t.Errorf("keel inspect %s: no %q in:\n%s", filepath.Base(img), want, out)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "host-amd64.spdx.json")); err != nil {
			t.Errorf("no SBOM next to the outputs: %v", err)
		}
	})

	t.Run("xorriso", func(t *testing.T) {
		for _, c := range []struct {
			file    string
			entries []string // platform of each El Torito entry, in order
		}{
			{"host-amd64-efi.iso", []string{"UEFI"}},
			{"host-amd64-bios.iso", []string{"BIOS"}},
			{"host-amd64.iso", []string{"BIOS", "UEFI"}},
		} {
			out := tool(t, "xorriso", "-indev", filepath.Join(dir, c.file), "-report_el_torito", "plain")
			var got []string
			for _, m := range regexp.MustCompile(`El Torito boot img\s*:\s*\d+\s+(\S+)`).FindAllStringSubmatch(out, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, " ") != strings.Join(c.entries, " ") {
				t.Errorf("%s: El Torito entries %v, want %v:\n%s", c.file, got, c.entries, out)
			}
		}
	})
}

// head returns the first n bytes of file.
func head(t *testing.T, file string, n int) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// extract copies size bytes at off of file into a new temporary file.
func extract(t *testing.T, file string, off, size int64) string {
	t.Helper()
	src, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	buf := make([]byte, size)
	if _, err := src.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
