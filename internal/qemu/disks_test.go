package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPrepareDisksCreatesMissing(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "data.raw")
	qcow := filepath.Join(dir, "data.qcow2")
	existing := filepath.Join(dir, "old.img")
	if err := os.WriteFile(existing, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := prepareDisks([]Disk{
		{Path: raw, Size: 1 << 30},
		{Path: qcow, Size: 2 << 30},
		{Path: existing, Size: 1 << 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Format != "raw" || got[1].Format != "qcow2" || got[2].Format != "raw" {
		t.Errorf("formats %+v", got)
	}
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 1<<30 || fi.Sys().(*syscall.Stat_t).Blocks != 0 {
		t.Errorf("raw disk: size %d, %d blocks; want 1 GiB, sparse", fi.Size(), fi.Sys().(*syscall.Stat_t).Blocks)
	}
	out, err := exec.Command("qemu-img", "info", qcow).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "virtual size: 2 GiB") {
		t.Errorf("qemu-img info: %v\n%s", err, out)
	}
	if out, err := exec.Command("qemu-img", "check", qcow).CombinedOutput(); err != nil {
		t.Errorf("qemu-img check: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Errorf("existing disk rewritten: %q", b)
	}
}

func TestPrepareDisksRejects(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []Disk{
		{Path: filepath.Join(dir, "missing.raw")},
		{Path: filepath.Join(dir, "x.vmdk"), Size: 1 << 30},
		{Path: filepath.Join(dir, "x.raw"), Size: -1},
		{Path: filepath.Join(dir, "x.raw"), Size: 1 << 30, Format: "ext4"},
		{Path: ""},
	} {
		if _, err := prepareDisks([]Disk{d}); err == nil {
			t.Errorf("prepareDisks(%+v) succeeded", d)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.vmdk")); err == nil {
		t.Error("a refused disk was left behind")
	}
}
