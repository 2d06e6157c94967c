package disk

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/tooltest"
)

func opts() EFIOptions {
	uki := bytes.Repeat([]byte("UKI!"), 1<<20) // 4 MiB
	root := bytes.Repeat([]byte("ROOT"), 300000)
	return EFIOptions{
		Seed:       "sha256:abc",
		ESPFiles:   fstree.MemFiles{{Path: "EFI/BOOT/BOOTX64.EFI", Data: uki}},
		Epoch:      time.Unix(1700000000, 0),
		Partitions: []Partition{{Name: "root", Type: TypeLinuxRootX86_64, Size: int64(len(root)), Content: bytes.NewReader(root)}},
	}
}

func build(t *testing.T, p string, o EFIOptions) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteEFI(f, o); err != nil {
		t.Fatal(err)
	}
}

func TestEFIDiskPassesSgdiskAndFsck(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.raw")
	o := opts()
	build(t, img, o)
	l, err := Plan(opts())
	if err != nil {
		t.Fatal(err)
	}

	v := tooltest.Run(t, "sgdisk", "-v", img)
	if !strings.Contains(v, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", v)
	}
	p := tooltest.Run(t, "sgdisk", "-p", img)
	if !strings.Contains(p, "EF00") || !strings.Contains(p, "8304") || !strings.Contains(p, GUID(o.Seed, "disk")) {
		t.Errorf("sgdisk -p:\n%s", p)
	}
	if i := tooltest.Run(t, "sgdisk", "-i", "1", img); !strings.Contains(i, GUID(o.Seed, "partition 1")) || !strings.Contains(i, "First sector: 2048 ") {
		t.Errorf("sgdisk -i 1:\n%s", i)
	}

	esp := filepath.Join(dir, "esp.img")
	tooltest.Run(t, "dd", "if="+img, "of="+esp, "bs=1M", "skip=1", "count="+itoa(l.Partitions[0].Size>>20), "status=none")
	tooltest.Run(t, "fsck.vfat", "-n", esp)
	if list := tooltest.Run(t, "mdir", "-i", esp, "::EFI/BOOT"); !strings.Contains(list, "BOOTX64  EFI") {
		t.Errorf("mdir:\n%s", list)
	}

	raw, _ := os.ReadFile(img)
	if st := l.Partitions[1].Start; !bytes.HasPrefix(raw[st:], []byte("ROOTROOT")) {
		t.Error("root partition content not at its start")
	}
	if int64(len(raw)) != l.Size || l.Size%(1<<20) != 0 {
		t.Errorf("disk is %d bytes, plan says %d", len(raw), l.Size)
	}

	again := filepath.Join(dir, "b.raw")
	build(t, again, opts())
	b, _ := os.ReadFile(again)
	if !bytes.Equal(raw, b) {
		t.Error("two builds differ")
	}
}

func TestFixedSizeAndTooSmall(t *testing.T) {
	dir := t.TempDir()
	o := opts()
	o.Size = 64 << 20
	o.Partitions = nil
	img := filepath.Join(dir, "fixed.raw")
	build(t, img, o)
	if st, _ := os.Stat(img); st.Size() != 64<<20 {
		t.Errorf("size %d", st.Size())
	}
	tooltest.Run(t, "sgdisk", "-v", img)

	o = opts()
	o.Size = 2 << 20
	f, _ := os.Create(filepath.Join(dir, "small.raw"))
	defer f.Close()
	if err := WriteEFI(f, o); err == nil || !strings.Contains(err.Error(), "smaller") {
		t.Fatalf("err = %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
