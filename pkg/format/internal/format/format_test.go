package format

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/keelos/keel/internal/blockdev"
)

func emptyImage(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFormatOnceThenNeverAgain(t *testing.T) {
	p := emptyImage(t, 32<<20)
	if err := Format(p, Options{Label: "data"}); err != nil {
		t.Fatal(err)
	}
	r, err := blockdev.ProbeFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != blockdev.Ext4 || r.Label != "data" {
		t.Fatalf("after format: %+v", r)
	}
	before, _ := os.ReadFile(p)
	if err := Format(p, Options{Label: "other"}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second format: %v, want ErrInUse", err)
	}
	after, _ := os.ReadFile(p)
	if string(before) != string(after) {
		t.Error("second format changed the disk")
	}
	// e2fsck agrees the filesystem is sound.
	if out, err := exec.Command("e2fsck", "-n", "-f", p).CombinedOutput(); err != nil {
		t.Errorf("e2fsck: %v\n%s", err, out)
	}
}

func TestFormatRefusesExistingData(t *testing.T) {
	p := emptyImage(t, 8<<20)
	if out, err := exec.Command("mkfs.vfat", p).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	if err := Format(p, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("vfat disk: %v", err)
	}
	p = emptyImage(t, 8<<20)
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt([]byte("x"), 700<<10)
	f.Close()
	if err := Format(p, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("disk with stray data: %v", err)
	}
	if err := Format(emptyImage(t, 1<<20), Options{Type: "xfs"}); err == nil {
		t.Error("xfs accepted")
	}
}

func TestPickDiskSkipsUsedAndNonVirtio(t *testing.T) {
	used := emptyImage(t, 4<<20)
	os.WriteFile(used, []byte("data"), 0o644)
	os.Truncate(used, 4<<20)
	free := emptyImage(t, 4<<20)
	devs := []blockdev.Device{
		{Name: "sda", Path: free},
		{Name: "vda", Path: free, Partitions: 2},
		{Name: "vda1", Path: free, Partition: true},
		{Name: "vdb", Path: used},
		{Name: "vdc", Path: free},
	}
	d, err := PickDisk(devs)
	if err != nil || d.Name != "vdc" {
		t.Fatalf("got %v %v, want vdc", d.Name, err)
	}
	if _, err := PickDisk(devs[:4]); !errors.Is(err, ErrNoDisk) {
		t.Errorf("got %v, want ErrNoDisk", err)
	}
}
