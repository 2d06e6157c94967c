package imageread

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/fuzzpatch"
	"github.com/keelos/keel/internal/imageread/imagetest"
	"github.com/keelos/keel/internal/initramfs"
	"github.com/keelos/keel/internal/iso9660"
	"github.com/keelos/keel/internal/qcow2"
	"github.com/keelos/keel/internal/uki"
)

// Readers of images that `keel inspect` may be given by anyone: each
// fuzz target checks that no input makes them panic, read more than
// io.ReaderAt allows, or allocate far more than the input holds; where
// keel has a writer, that its output reads back.

// wanted are the names the fuzz targets ask the readers for.
var wanted = []string{"etc/keel/build.toml", "init", "usr/bin/same-as-toml", "bin/sh"}

// smallFiles are the files of the fuzzing seeds: small, so that the
// fuzzer's inputs are.
var smallFiles = map[string]string{
	"init":                 "#!init\n",
	"etc/keel/build.toml":  "name = \"host\"\n",
	"etc/keel/empty":       "",
	"usr/bin/same-as-toml": "name = \"host\"\n", // a hard link in the cpio
}

// allocated returns how many bytes f allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// checkReads reads windows of r, a disk of size bytes, and fails on a
// read that breaks io.ReaderAt's contract.
func checkReads(t *testing.T, r io.ReaderAt, size int64) {
	t.Helper()
	buf := make([]byte, 64<<10+333)
	for _, off := range []int64{0, size / 2, size - 100, size} {
		if off < 0 {
			continue
		}
		n, err := r.ReadAt(buf, off)
		if n < 0 || n > len(buf) || (n < len(buf) && err == nil) {
			t.Fatalf("ReadAt(%d bytes at %d) of a %d-byte disk = %d, %v", len(buf), off, size, n, err)
		}
	}
}

// cpioOf is files archived by keel's initramfs writer, uncompressed.
func cpioOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	root, err := imagetest.Tree(filepath.Join(t.TempDir(), "store"), files)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := initramfs.WriteCPIO(&b, root, epoch.Default().Unix()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzScanCPIO checks the newc reader: it keeps only the names asked for,
// and what it allocates is bounded by the input, not by the sizes its
// headers claim.
func FuzzScanCPIO(f *testing.F) {
	f.Add(cpioOf(f, smallFiles))
	f.Add([]byte("070701"))
	// A wanted file whose header claims 256 MiB that the archive lacks.
	f.Add([]byte("070701" + "00000001" + "000081A4" + "00000000" + "00000000" + "00000001" + "00000000" +
		"0FFFFFFF" + strings.Repeat("00000000", 4) + "00000005" + "00000000" + "init\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newCollector(wanted)
		var err error
		n := allocated(func() { err = scanCPIO(bytes.NewReader(data), c) })
		if limit := uint64(16*len(data) + 1<<20); n > limit {
			t.Fatalf("%d bytes of input: %d bytes allocated, more than %d", len(data), n, limit)
		}
		if err != nil {
			return
		}
		for name := range c.files {
			if !c.want[name] {
				t.Fatalf("unwanted %q kept", name)
			}
		}
		for name := range c.links {
			if !c.want[name] {
				t.Fatalf("unwanted link %q kept", name)
			}
		}
	})
}

// FuzzCPIORoundTrip checks that a file archived by keel's initramfs
// writer is read back unchanged, hard-linked or not.
func FuzzCPIORoundTrip(f *testing.F) {
	f.Add("etc/keel/build.toml", []byte("name = \"host\"\n"))
	f.Add("bin/sh", []byte{})
	f.Add("init", []byte("#!init\n"))
	f.Fuzz(func(t *testing.T, name string, content []byte) {
		files := map[string]string{"etc/keel/build.toml": "x", "init": "#!init\n", name: string(content)}
		root, err := imagetest.Tree(filepath.Join(t.TempDir(), "store"), files)
		if err != nil {
			return // not a name a tree can hold
		}
		var b bytes.Buffer
		if err := initramfs.WriteCPIO(&b, root, 0); err != nil {
			return
		}
		c := newCollector([]string{name})
		if err := scanCPIO(&b, c); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if got, ok := c.files[cleanName(name)]; !ok || !bytes.Equal(got, content) {
			t.Fatalf("%q: read back %q (found %v), want %q", name, got, ok, content)
		}
	})
}

// qcow2Of is a disk with data in two clusters, written by keel's writer.
func qcow2Of(t testing.TB) []byte {
	disk := make([]byte, 3<<20)
	copy(disk[100:], "first cluster")
	copy(disk[2<<20+5:], "a later one")
	var b bytes.Buffer
	if err := qcow2.Write(&b, bytes.NewReader(disk), int64(len(disk))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzQcow2 mutates the header, the L1 table and the first L2 table of a
// qcow2 image, and truncates it.
func FuzzQcow2(f *testing.F) {
	img := qcow2Of(f)
	be := binary.BigEndian
	l1 := int(be.Uint64(img[40:]))
	l2 := int(be.Uint64(img[l1:]) & qcowOffsetMask)
	rs := fuzzpatch.Regions(0, 104, l1, 64, l2, 128)
	f.Add(fuzzpatch.Seed(img, rs), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		im := fuzzpatch.Apply(img, rs, data, cut)
		q, err := NewQcow2(im)
		if err != nil {
			return
		}
		checkReads(t, q, q.Size())
	})
}

// FuzzQcow2RoundTrip checks that keel's qcow2 writer and this reader
// agree on every disk.
func FuzzQcow2RoundTrip(f *testing.F) {
	f.Add([]byte("disk"), uint32(0))
	f.Add(bytes.Repeat([]byte{1}, 70000), uint32(1<<20))
	f.Fuzz(func(t *testing.T, data []byte, at uint32) {
		// The data lands at any offset of a disk of up to 4 MiB.
		disk := make([]byte, int(at%(4<<20))+len(data))
		copy(disk[at%(4<<20):], data)
		var b bytes.Buffer
		if err := qcow2.Write(&b, bytes.NewReader(disk), int64(len(disk))); err != nil {
			t.Fatal(err)
		}
		q, err := NewQcow2(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, q.Size())
		if n, err := q.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
			t.Fatalf("read %d of %d: %v", n, len(got), err)
		}
		if int64(len(disk)) != q.Size() || !bytes.Equal(got, disk) {
			t.Fatalf("disk of %d bytes read back as %d bytes, or differs", len(disk), q.Size())
		}
	})
}

// ukiOf is a UKI of imagetest's stub holding initrd.
func ukiOf(t testing.TB, initrd []byte) []byte {
	var b bytes.Buffer
	if err := uki.Build(&b, imagetest.Stub(), []byte("KERNEL"), initrd, "console=ttyS0", "ID=keel\n"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzUKIInitrd checks that the .initrd section found lies inside the
// file, whatever its PE headers say.
func FuzzUKIInitrd(f *testing.F) {
	f.Add(ukiOf(f, cpioOf(f, smallFiles)))
	f.Fuzz(func(t *testing.T, data []byte) {
		sec, err := ukiInitrd(bytes.NewReader(data))
		if err != nil {
			return
		}
		_, off, n := sec.Outer()
		if off < 0 || n < 0 {
			t.Fatalf(".initrd at %d, %d bytes", off, n)
		}
		if _, err := io.Copy(io.Discard, sec); err != nil && off+n <= int64(len(data)) {
			t.Fatalf(".initrd at %d, %d bytes of %d: %v", off, n, len(data), err)
		}
	})
}

// isoOf is an ISO 9660 image holding EFI/BOOT/EFIBOOT.IMG and
// ISOLINUX/ISOLINUX.BIN, without its 32 KiB system area: isoFile does not
// read it, and the fuzzer need not carry it.
func isoOf(t testing.TB) []byte {
	file := func(p, content string) iso9660.File {
		return iso9660.File{Path: p, Size: int64(len(content)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(content)), nil
		}}
	}
	var b bytes.Buffer
	err := iso9660.Write(&b, iso9660.Options{
		VolumeID: "TEST",
		Files:    []iso9660.File{file("EFI/BOOT/EFIBOOT.IMG", "fat"), file("ISOLINUX/ISOLINUX.BIN", "bios"), file("BOOT/INITRD.IMG", "070701")},
		Epoch:    epoch.Default(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()[16*2048:]
}

// FuzzISOFile checks that a file found in an ISO lies inside it.
func FuzzISOFile(f *testing.F) {
	f.Add(isoOf(f))
	systemArea := make([]byte, 16*2048)
	f.Fuzz(func(t *testing.T, data []byte) {
		img := append(systemArea[:len(systemArea):len(systemArea)], data...)
		for _, name := range []string{"EFI/BOOT/EFIBOOT.IMG", "ISOLINUX/ISOLINUX.BIN", "BOOT/INITRD.IMG"} {
			sec, err := isoFile(bytes.NewReader(img), int64(len(img)), name)
			if err != nil {
				continue
			}
			if _, off, n := sec.Outer(); off < 0 || n < 0 || off+n > int64(len(img)) {
				t.Fatalf("%s at %d, %d bytes, in a %d-byte image", name, off, n, len(img))
			}
		}
	})
}

// FuzzDisk mutates the GPT, the FAT boot sector and tables of the EFI
// system partition of a raw EFI disk, and reads the root out of the UKI
// on it, as keel inspect does.
func FuzzDisk(f *testing.F) {
	p := filepath.Join(f.TempDir(), "efi.raw")
	if err := imagetest.EFIDisk(p, ukiOf(f, cpioOf(f, smallFiles)), 0); err != nil {
		f.Fatal(err)
	}
	img := readFile(f, p)
	esp, err := gptESP(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		f.Fatal(err)
	}
	_, espOff, _ := esp.Outer()
	le := binary.LittleEndian
	bs := img[espOff:]
	reserved, fats, rootEntries := int(le.Uint16(bs[14:])), int(bs[16]), int(le.Uint16(bs[17:]))
	perFAT := int(le.Uint16(bs[22:]))
	fat := int(espOff) + reserved*512
	root := fat + fats*perFAT*512
	rs := fuzzpatch.Regions(446, 66, 512, 92, 1024, 256, int(espOff), 90, fat, 64, root, min(256, rootEntries*32))
	f.Add(fuzzpatch.Seed(img, rs), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		im := &Image{}
		disk := fuzzpatch.Apply(img, rs, data, cut)
		if err := im.disk(disk, disk.Size()); err != nil {
			return
		}
		readRoot(t, im)
	})
}

// FuzzLocate checks the whole of Open's format detection and reading on
// the small formats: an initramfs (plain and zstd), a tar, a UKI.
func FuzzLocate(f *testing.F) {
	dir := f.TempDir()
	root, err := imagetest.Tree(filepath.Join(dir, "store"), smallFiles)
	if err != nil {
		f.Fatal(err)
	}
	cpio := cpioOf(f, smallFiles)
	var zst, tarBuf bytes.Buffer
	if err := initramfs.WriteEpoch(&zst, root, initramfs.Zstd, 0); err != nil {
		f.Fatal(err)
	}
	if err := root.WriteTar(&tarBuf, epoch.Default()); err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{cpio, zst.Bytes(), tarBuf.Bytes(), ukiOf(f, zst.Bytes()), gceOf(f, 1<<30)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		im := &Image{}
		var err error
		// Locating inflates at most a GCE disk's first MiB.
		n := allocated(func() { err = im.locate(bytes.NewReader(data), int64(len(data))) })
		if limit := uint64(64<<20 + 1024*len(data)); n > limit {
			t.Fatalf("%d bytes of input: %d bytes allocated locating the root, more than %d", len(data), n, limit)
		}
		if err != nil {
			return
		}
		readRoot(t, im)
	})
}

// gceOf is a GCE image (disk.raw in a gzipped tar) that holds only the
// first MiB of a disk whose EFI system partition ends at espEnd.
func gceOf(t testing.TB, espEnd int64) []byte {
	p := filepath.Join(t.TempDir(), "efi.raw")
	if err := imagetest.EFIDisk(p, ukiOf(t, cpioOf(t, smallFiles)), 0); err != nil {
		t.Fatal(err)
	}
	head := readFile(t, p)[:1<<20]
	// The ESP is the first entry of the table at LBA 2: move its end.
	binary.LittleEndian.PutUint64(head[1024+40:], uint64(espEnd/512-1))
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "disk.raw", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2 * espEnd})
	tw.Write(head)
	tw.Flush()
	zw.Close()
	return b.Bytes()
}

// readRoot reads the wanted files of im's root and checks that nothing
// else was kept and that decompression stayed within what ReadFiles
// promises.
func readRoot(t *testing.T, im *Image) {
	t.Helper()
	var files map[string][]byte
	var links map[string]string
	n := allocated(func() { files, links, _ = im.ReadFiles(wanted...) })
	if limit := uint64(len(wanted))*maxFile + 64<<20; n > limit {
		t.Fatalf("%d bytes allocated reading %d files", n, len(wanted))
	}
	c := newCollector(wanted)
	for name, data := range files {
		if !c.want[name] || len(data) > maxFile {
			t.Fatalf("kept %q (%d bytes)", name, len(data))
		}
	}
	for name := range links {
		if !c.want[name] {
			t.Fatalf("kept link %q", name)
		}
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
