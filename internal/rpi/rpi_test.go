package rpi

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/tooltest"
)

func file(name string, data []byte) fstree.MemFile { return fstree.MemFile{Path: name, Data: data} }

func TestConfig(t *testing.T) {
	c := string(Config("x"))
	for _, line := range []string{"arm_64bit=1", "kernel=vmlinuz", "initramfs initrd.img followkernel", "enable_uart=1", "upstream_kernel=1", "[pi4]", "[pi5]"} {
		if !strings.Contains(c, "\n"+line+"\n") {
			t.Errorf("config.txt has no line %q:\n%s", line, c)
		}
	}
	if !strings.HasSuffix(c, "[all]\n") {
		t.Error("config.txt does not end in [all], so text appended to it would apply to the Pi 5 only")
	}
}

func TestIsPiDTB(t *testing.T) {
	for name, want := range map[string]bool{
		"bcm2711-rpi-4-b.dtb": true, "bcm2712-rpi-5-b.dtb": true, "bcm2712-d-rpi-5-b.dtb": true,
		"bcm2837-rpi-3-b.dtb": true, "bcm2711-rpi-4-b.dts": false, "bcm4908-asus-gt-ac5300.dtb": false,
	} {
		if IsPiDTB(name) != want {
			t.Errorf("IsPiDTB(%q) = %v", name, !want)
		}
	}
}

func TestPlan(t *testing.T) {
	l, err := Plan(Options{Files: fstree.MemFiles{file("a", make([]byte, 10))}})
	if err != nil {
		t.Fatal(err)
	}
	if l.PartStart != 4*mib || l.PartSize != 128*mib || l.Size != 132*mib {
		t.Errorf("fit layout %+v", l)
	}
	big := make([]byte, 200*mib)
	l, err = Plan(Options{Files: fstree.MemFiles{file("k", big)}})
	if err != nil {
		t.Fatal(err)
	}
	if l.PartSize < 200*mib || l.PartSize%mib != 0 || l.Size != l.PartStart+l.PartSize {
		t.Errorf("layout for 200 MiB of files: %+v", l)
	}
	if _, err := Plan(Options{Size: 100 * mib}); err == nil || !strings.Contains(err.Error(), "smaller") {
		t.Errorf("size below the partition: err = %v", err)
	}
	if _, err := Plan(Options{Size: 200*mib + 1}); err == nil {
		t.Error("size not a multiple of 512 accepted")
	}
}

// TestWriteDiskExternalTools writes a disk with --size's worth of room
// and checks it with sfdisk, fsck.vfat and mtools; two writes of the same
// input are the same bytes, and another input gets another disk
// signature.
func TestWriteDiskExternalTools(t *testing.T) {
	tooltest.Need(t, "sfdisk", "fsck.vfat", "mdir")
	dir := t.TempDir()
	opts := Options{
		Seed: "test-seed",
		Files: fstree.MemFiles{
			file(ConfigName, Config("t")), file(CmdlineName, []byte(strings.Join(Consoles, " ")+"\n")),
			file("start4.elf", bytes.Repeat([]byte{1}, 3<<20)), file("overlays/x.dtbo", []byte("dtbo")),
		},
		Epoch: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		Size:  300 * mib,
	}
	write := func(name string, o Options) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := WriteDisk(f, o); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.img", opts)
	st, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 300*mib {
		t.Errorf("disk is %d bytes, want the 300 MiB asked for", st.Size())
	}
	out, err := exec.Command("sfdisk", "-d", a).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk -d: %v\n%s", err, out)
	}
	for _, want := range []string{"label: dos", "start=        8192, size=      262144, type=c, bootable"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sfdisk -d: no %q in:\n%s", want, out)
		}
	}
	part := filepath.Join(dir, "part.img")
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, data[4*mib:132*mib], 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	ls, err := exec.Command("mdir", "-b", "-/", "-i", part, "::/").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v\n%s", err, ls)
	}
	for _, want := range []string{"::/config.txt", "::/cmdline.txt", "::/start4.elf", "::/overlays/x.dtbo"} {
		if !strings.Contains(string(ls), want) {
			t.Errorf("mdir: no %s in:\n%s", want, ls)
		}
	}

	b := write("b.img", opts)
	if other, _ := os.ReadFile(b); !bytes.Equal(data, other) {
		t.Error("two writes of the same input differ")
	}
	opts.Seed = "other-seed"
	c, _ := os.ReadFile(write("c.img", opts))
	if bytes.Equal(data[440:444], c[440:444]) {
		t.Error("another seed gave the same disk signature")
	}
}
