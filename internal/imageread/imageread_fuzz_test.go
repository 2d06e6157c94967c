package imageread

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/fuzzpatch"
	"github.com/keelos/keel/internal/imageread/imagetest"
	"github.com/keelos/keel/internal/initramfs"
	"github.com/keelos/keel/internal/uki"
)

// Images that `keel inspect` may be given by anyone: the fuzz targets
// check that no input makes the chain of readers panic or allocate far
// more than the input holds. Each reader's own targets live beside it
// (internal/initramfs, qcow2, disk, iso9660, uki).

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

// cpioOf is files archived by keel's initramfs writer, uncompressed.
func cpioOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	b, err := imagetest.CPIO(t.TempDir(), files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ukiOf is a UKI of imagetest's stub holding initrd.
func ukiOf(t testing.TB, initrd []byte) []byte {
	var b bytes.Buffer
	if err := uki.Build(&b, imagetest.Stub(), []byte("KERNEL"), initrd, "console=ttyS0", "ID=keel\n"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
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
	esp, err := bootPartition(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		f.Fatal(err)
	}
	espOff := esp.Start
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
		n := imagetest.Allocated(func() { err = im.locate(bytes.NewReader(data), int64(len(data))) })
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
	n := imagetest.Allocated(func() { files, links, _ = im.ReadFiles(wanted...) })
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
