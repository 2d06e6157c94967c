package fat

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/tooltest"
)

func memFile(p string, data []byte) fstree.MemFile { return fstree.MemFile{Path: p, Data: data} }

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed ^ byte(i>>11)
	}
	return b
}

func sampleFiles() fstree.MemFiles {
	return fstree.MemFiles{
		memFile("EFI/BOOT/BOOTX64.EFI", pattern(3<<20+17, 1)),
		memFile("loader/entries/keel with a long name.conf", []byte("title keel\n")),
		memFile("README", []byte("hello\n")),
		memFile("EFI/keel/empty", nil),
	}
}

func build(t *testing.T, dir, name string, size int64, files fstree.Source) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(f, 0, size, files, Options{Label: "KEEL", Epoch: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImagesPassFsckAndMtools(t *testing.T) {
	files := sampleFiles()
	for _, tc := range []struct {
		name string
		size int64
		kind string
	}{
		{"fat16", Size(files), "16 bit entries"},
		{"fat32", 80 << 20, "32 bit entries"},
		// go-diskfs sizes this one's FAT two entries short of the data
		// area; Write shrinks the volume to what the FAT maps.
		{"fat32 of 64 MiB", 64 << 20, "32 bit entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := build(t, dir, "a.img", tc.size, files)
			fsck := tooltest.Run(t, "fsck.vfat", "-n", "-v", img)
			if !strings.Contains(fsck, tc.kind) || strings.Contains(fsck, "Reclaimed") || strings.Contains(fsck, "Fixing") {
				t.Errorf("fsck.vfat:\n%s", fsck)
			}
			list := tooltest.Run(t, "mdir", "-i", img, "-/", "::")
			for _, want := range []string{"BOOTX64  EFI", "keel with a long name.conf", "README", "KEEL"} {
				if !strings.Contains(list, want) {
					t.Errorf("mdir lacks %q:\n%s", want, list)
				}
			}
			out := filepath.Join(dir, "boot.efi")
			tooltest.Run(t, "mcopy", "-i", img, "::EFI/BOOT/BOOTX64.EFI", out)
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, pattern(3<<20+17, 1)) {
				t.Error("BOOTX64.EFI content differs")
			}
			f, _ := os.Open(img)
			defer f.Close()
			if s, err := Serial(f, 0); err != nil || s == 0 {
				t.Errorf("serial %#x, %v", s, err)
			}

			again := build(t, dir, "b.img", tc.size, sampleFiles())
			a, _ := os.ReadFile(img)
			b, _ := os.ReadFile(again)
			if !bytes.Equal(a, b) {
				t.Error("two builds differ")
			}
		})
	}
}

func TestWriteAtOffsetLeavesRestAlone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	head := bytes.Repeat([]byte{0xAA}, 1<<20)
	if err := os.WriteFile(p, head, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := sampleFiles()
	size := Size(files)
	if err := Write(f, 1<<20, size, files, Options{}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(head))
	f.ReadAt(got, 0)
	if !bytes.Equal(got, head) {
		t.Error("bytes before the volume changed")
	}
	if st, _ := f.Stat(); st.Size() != 1<<20+size {
		t.Errorf("file size %d", st.Size())
	}
}

func TestSizeFitsLargeContent(t *testing.T) {
	// 70 MiB in many files must fit the size Size picks (FAT32 then).
	var files fstree.MemFiles
	for i := range 70 {
		files = append(files, memFile("d/"+strings.Repeat("x", i%20)+string(rune('a'+i%26))+"-"+itoa(i), pattern(1<<20-i, byte(i))))
	}
	size := Size(files)
	img := build(t, t.TempDir(), "big.img", size, files)
	tooltest.Run(t, "fsck.vfat", "-n", img)
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }
