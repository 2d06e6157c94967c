package fat

import (
	"bytes"
	"os"
	"testing"

	"github.com/keelos/keel/internal/fstree"
)

// TestExtentFindsFileData writes FAT16 and FAT32 volumes and checks that
// the range Extent reports holds exactly each file's bytes.
func TestExtentFindsFileData(t *testing.T) {
	files := append(sampleFiles(), memFile("KEEL/INITRD.IMG", pattern(5<<20+3, 9)))
	for _, tc := range []struct {
		name string
		size int64
	}{{"fat16", Size(files)}, {"fat32", 80 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(build(t, t.TempDir(), "vol.img", tc.size, files))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, want := range []struct {
				path string
				file fstree.MemFile
			}{{"EFI/BOOT/BOOTX64.EFI", files[0]}, {"README", files[2]}, {"keel/initrd.img", files[4]}} {
				off, size, err := Extent(f, 0, want.path)
				if err != nil {
					t.Fatalf("%s: %v", want.path, err)
				}
				data := bytes.NewBuffer(want.file.Data)
				if size != int64(data.Len()) {
					t.Fatalf("%s: size %d, want %d", want.path, size, data.Len())
				}
				got := make([]byte, size)
				if _, err := f.ReadAt(got, off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data.Bytes()) {
					t.Fatalf("%s: the extent at %d does not hold the file", want.path, off)
				}
			}
			if _, _, err := Extent(f, 0, "EFI/BOOT/MISSING.EFI"); err == nil {
				t.Fatal("missing file: no error")
			}
			if _, _, err := Extent(f, 0, "EFI/BOOT"); err == nil {
				t.Fatal("directory as a file: no error")
			}
		})
	}
}
