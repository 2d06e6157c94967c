package iso9660

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/tooltest"
)

func mem(p string, data []byte) fstree.MemFile { return fstree.MemFile{Path: p, Data: data} }

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13) ^ seed ^ byte(i>>9)
	}
	return b
}

// efiImage builds a real FAT image holding a fake loader.
func efiImage(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "efi.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := fstree.MemFiles{mem("EFI/BOOT/BOOTX64.EFI", pattern(5000, 9))}
	if err := fat.Write(f, 0, fat.Size(files), files, fat.Options{Label: "EFIBOOT"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func options(t *testing.T, efi []byte) Options {
	var many fstree.MemFiles
	for i := range 120 { // enough records to span several directory sectors
		many = append(many, mem(fmt.Sprintf("many/file-number-%03d.txt", i), []byte{byte(i)}))
	}
	return Options{
		VolumeID: "KEEL_TEST",
		Files: append(fstree.MemFiles{
			mem("boot/efi.img", efi),
			mem("isolinux/isolinux.bin", pattern(4096+100, 3)),
			mem("kernel", pattern(3<<20+5, 1)),
			mem("etc/deep/er/still/config.toml", []byte("x = 1\n")),
			mem("empty", nil),
		}, many...),
		EFIBootImage:  "boot/efi.img",
		BIOSBootImage: "isolinux/isolinux.bin",
		BootInfoTable: true,
		Epoch:         time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	}
}

func write(t *testing.T, o Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestXorrisoReadsImage(t *testing.T) {
	efi := efiImage(t)
	o := options(t, efi)
	data := write(t, o)
	dir := t.TempDir()
	iso := filepath.Join(dir, "a.iso")
	if err := os.WriteFile(iso, data, 0o644); err != nil {
		t.Fatal(err)
	}

	rep := tooltest.Run(t, "xorriso", "-indev", iso, "-report_el_torito", "plain")
	if !strings.Contains(rep, "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4") ||
		!strings.Contains(rep, fmt.Sprintf("El Torito boot img :   2  UEFI  y   none  0x0000  0x00  %5d", len(efi)/512)) {
		t.Errorf("report_el_torito:\n%s", rep)
	}
	if !strings.Contains(rep, "/BOOT/EFI.IMG") {
		t.Errorf("EFI image path not reported:\n%s", rep)
	}

	find := tooltest.Run(t, "xorriso", "-indev", iso, "-find", "/", "-type", "f")
	for _, want := range []string{"'/KERNEL'", "'/ETC/DEEP/ER/STILL/CONFIG.TOML'", "'/MANY/FILE_NUMBER_119.TXT'", "'/EMPTY'"} {
		if !strings.Contains(find, want) {
			t.Errorf("xorriso -find lacks %s:\n%.2000s", want, find)
		}
	}
	if n := strings.Count(find, "/MANY/"); n != 120 {
		t.Errorf("%d files under /MANY, want 120", n)
	}

	list := tooltest.Run(t, "7z", "l", iso)
	if !strings.Contains(list, "KERNEL") || !strings.Contains(list, "CONFIG.TOML") {
		t.Errorf("7z l:\n%.3000s", list)
	}

	out := filepath.Join(dir, "out")
	tooltest.Run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/KERNEL", out)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, pattern(3<<20+5, 1)) {
		t.Error("extracted kernel differs")
	}
	tooltest.Run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/BOOT/EFI.IMG", out+".img")
	tooltest.Run(t, "fsck.vfat", "-n", out+".img")

	if !bytes.Equal(data, write(t, options(t, efi))) {
		t.Error("two builds differ")
	}
}

func TestBootInfoTable(t *testing.T) {
	o := options(t, efiImage(t))
	img, err := plan(o)
	if err != nil {
		t.Fatal(err)
	}
	data := write(t, o)
	bios := data[int64(img.bios.lba)*SectorSize:][:img.bios.Size]
	orig := pattern(4096+100, 3)
	le := binary.LittleEndian
	var sum uint32
	for i := 64; i < len(orig); i += 4 {
		sum += le.Uint32(orig[i:])
	}
	if le.Uint32(bios[8:]) != 16 || le.Uint32(bios[12:]) != img.bios.lba || le.Uint32(bios[16:]) != uint32(len(orig)) || le.Uint32(bios[20:]) != sum {
		t.Errorf("boot info table %x", bios[8:24])
	}
	if !bytes.Equal(bios[64:], orig[64:]) || !bytes.Equal(bios[:8], orig[:8]) {
		t.Error("boot file changed outside the table")
	}
}

func TestEFIOnlyCatalog(t *testing.T) {
	efi := efiImage(t)
	data := write(t, Options{VolumeID: "EFI", Files: fstree.MemFiles{mem("efi.img", efi)}, EFIBootImage: "efi.img"})
	iso := filepath.Join(t.TempDir(), "e.iso")
	os.WriteFile(iso, data, 0o644)
	rep := tooltest.Run(t, "xorriso", "-indev", iso, "-report_el_torito", "plain")
	if !strings.Contains(rep, "El Torito boot img :   1  UEFI  y   none") || strings.Contains(rep, "BIOS  y") {
		t.Errorf("report_el_torito:\n%s", rep)
	}
}

func TestNameClashFails(t *testing.T) {
	_, err := plan(Options{Files: fstree.MemFiles{mem("a-b", nil), mem("A_B", nil)}})
	if err == nil || !strings.Contains(err.Error(), "clashes") {
		t.Fatalf("err = %v", err)
	}
}

func TestLongNamesAreShortenedStably(t *testing.T) {
	a, _ := mapName("libcryptsetup-token-systemd-fido2.so", false)
	b, _ := mapName("libcryptsetup-token-systemd-fido2.so.12", false)
	if len(a) > maxName+2 || len(b) > maxName+2 || a == b || !strings.HasSuffix(a, ".SO;1") {
		t.Fatalf("%q %q", a, b)
	}
	if again, _ := mapName("libcryptsetup-token-systemd-fido2.so", false); again != a {
		t.Fatal("not stable")
	}
}

// TestHybridMBRPointsAtBootFiles checks the isohybrid MBR by following
// it: the BIOS boot file's address at 432 and the EFI partition both lead
// to the bytes of those files, the whole-image entry spans the padded
// image, and fdisk reads the table.
func TestHybridMBRPointsAtBootFiles(t *testing.T) {
	efi := efiImage(t)
	o := options(t, efi)
	code := pattern(432, 7)
	o.Hybrid = &Hybrid{MBR: code, ID: 0x4b45454c}
	img := write(t, o)
	if len(img)%(1<<20) != 0 {
		t.Errorf("hybrid image of %d bytes is not whole MiB", len(img))
	}
	le := binary.LittleEndian
	if !bytes.Equal(img[:432], code) || img[510] != 0x55 || img[511] != 0xaa || le.Uint32(img[440:]) != 0x4b45454c {
		t.Fatal("MBR code, signature or disk id missing")
	}
	bios := int64(le.Uint32(img[432:])) * 512
	if want := pattern(4096+100, 3); !bytes.Equal(img[bios:bios+8], want[:8]) {
		t.Errorf("the address at 432 (%d) does not lead to isolinux.bin", bios)
	}
	whole, esp := img[446:462], img[462:478]
	if whole[0] != 0x80 || whole[4] != 0 || int(le.Uint32(whole[12:]))*512 != len(img) {
		t.Errorf("whole-image entry % x", whole)
	}
	start, n := int64(le.Uint32(esp[8:]))*512, int64(le.Uint32(esp[12:]))*512
	if esp[4] != 0xef || n != int64(len(efi)+511)/512*512 || !bytes.Equal(img[start:start+int64(len(efi))], efi) {
		t.Errorf("EFI entry % x does not cover the EFI boot image", esp)
	}
	p := filepath.Join(t.TempDir(), "hybrid.iso")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := tooltest.Run(t, "fdisk", "-l", p); !strings.Contains(out, " ef ") {
		t.Errorf("fdisk -l lists no EFI partition:\n%s", out)
	}

	o.BIOSBootImage = ""
	if err := Write(io.Discard, o); err == nil {
		t.Error("a hybrid image without a BIOS boot file was accepted")
	}
}
