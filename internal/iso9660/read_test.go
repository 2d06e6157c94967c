package iso9660

import (
	"bytes"
	"testing"

	"github.com/keelos/keel/internal/fstree"
)

// TestReadBack reads the files, directories and boot catalog Write made.
func TestReadBack(t *testing.T) {
	efi := efiImage(t)
	o := options(t, efi)
	img, err := plan(o)
	if err != nil {
		t.Fatal(err)
	}
	data := write(t, o)
	v, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{
		"kernel": pattern(3<<20+5, 1), "ETC/DEEP/ER/STILL/CONFIG.TOML": []byte("x = 1\n"),
		"/boot/efi.img": efi, "empty": nil, "many/file_number_007.txt": {7},
	} {
		sec, err := v.File(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := make([]byte, sec.Size())
		if _, err := sec.ReadAt(got, 0); err != nil && len(got) > 0 || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, want %d (%v)", name, len(got), len(want), err)
		}
	}
	if _, err := v.File("etc/deep"); err == nil {
		t.Error("a directory was read as a file")
	}
	if _, err := v.File("kernel/x"); err == nil {
		t.Error("a file was walked as a directory")
	}
	recs, err := v.ReadDir("many")
	if err != nil || len(recs) != 120 || recs[0].Name != "FILE_NUMBER_000.TXT" || recs[0].Dir {
		t.Errorf("ReadDir(many): %d records, %v", len(recs), err)
	}

	boot, err := v.BootEntries()
	want := []BootEntry{{Platform: 0, Extent: img.bios.lba, Sectors: 4}, {Platform: 0xef, Extent: img.efi.lba, Sectors: uint16(len(efi) / 512)}}
	if err != nil || len(boot) != 2 || boot[0] != want[0] || boot[1] != want[1] {
		t.Errorf("boot entries %+v, %v; want %+v", boot, err, want)
	}
	only := write(t, Options{VolumeID: "EFI", Files: fstree.MemFiles{mem("efi.img", efi)}, EFIBootImage: "efi.img"})
	v, err = Open(bytes.NewReader(only), int64(len(only)))
	if err != nil {
		t.Fatal(err)
	}
	if boot, err := v.BootEntries(); err != nil || len(boot) != 1 || boot[0].Platform != 0xef {
		t.Errorf("EFI-only boot entries %+v, %v", boot, err)
	}
}

// isoOf is an image holding the files FuzzFile looks for, without its 32
// KiB system area: Open does not read it, and the fuzzer need not carry
// it.
func isoOf(t testing.TB) []byte {
	var b bytes.Buffer
	err := Write(&b, Options{
		VolumeID: "TEST",
		Files: fstree.MemFiles{
			{Path: "EFI/BOOT/EFIBOOT.IMG", Data: []byte("fat")},
			{Path: "ISOLINUX/ISOLINUX.BIN", Data: []byte("bios")},
			{Path: "BOOT/INITRD.IMG", Data: []byte("070701")},
		},
		EFIBootImage: "EFI/BOOT/EFIBOOT.IMG",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()[systemAreaSectors*SectorSize:]
}

// FuzzFile checks that what the reader finds in an ISO lies inside it.
func FuzzFile(f *testing.F) {
	f.Add(isoOf(f))
	systemArea := make([]byte, systemAreaSectors*SectorSize)
	f.Fuzz(func(t *testing.T, data []byte) {
		img := append(systemArea[:len(systemArea):len(systemArea)], data...)
		size := int64(len(img))
		v, err := Open(bytes.NewReader(img), size)
		if err != nil {
			return
		}
		for _, name := range []string{"EFI/BOOT/EFIBOOT.IMG", "ISOLINUX/ISOLINUX.BIN", "BOOT/INITRD.IMG"} {
			sec, err := v.File(name)
			if err != nil {
				continue
			}
			if _, off, n := sec.Outer(); off < 0 || n < 0 || off+n > size {
				t.Fatalf("%s at %d, %d bytes, in a %d-byte image", name, off, n, size)
			}
		}
		v.ReadDir("EFI")
		v.BootEntries()
	})
}
