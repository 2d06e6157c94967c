package fat

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"testing"
)

// TestOpenReadsFilesBack reads every file Write put in FAT16 and FAT32
// volumes, long names included.
func TestOpenReadsFilesBack(t *testing.T) {
	files := sampleFiles()
	for _, size := range []int64{Size(files), 80 << 20} {
		img, err := os.ReadFile(build(t, t.TempDir(), "vol.img", size, files))
		if err != nil {
			t.Fatal(err)
		}
		v, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			got, err := v.ReadFile(f.Path)
			if err != nil || !bytes.Equal(got, f.Data) {
				t.Errorf("%d-byte volume: %s: %d bytes, %v; want %d bytes", size, f.Path, len(got), err, len(f.Data))
			}
		}
		if _, err := v.ReadFile("EFI/BOOT/MISSING.EFI"); err == nil {
			t.Error("a missing file was read")
		}
		if _, err := fs.Stat(v, "EFI/BOOT"); err != nil {
			t.Errorf("stat EFI/BOOT: %v", err)
		}
	}
}

// TestOpenRefusesBadBootSector: go-diskfs would allocate the FAT at the
// size a boot sector claims.
func TestOpenRefusesBadBootSector(t *testing.T) {
	img, err := os.ReadFile(build(t, t.TempDir(), "vol.img", Size(sampleFiles()), sampleFiles()))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(img[0x16:], 0xffff) // sectors per FAT
	if _, err := Open(bytes.NewReader(img), int64(len(img))); err == nil {
		t.Fatal("a FAT larger than the volume was accepted")
	}
}
