package vmdk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keelos/keel/internal/tooltest"
)

// testSize spans four grain tables (32 MiB each) and ends three sectors
// into a grain, so the last grain is partial.
const testSize = 100<<20 + 3*sectorSize

// sparseRaw writes a raw image with scattered data: incompressible and
// compressible runs, a write straddling a grain boundary, nothing at all in
// the second grain table's span, and data in the very last sector.
func sparseRaw(t testing.TB, dir string) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(testSize); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	random := make([]byte, 256<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := []byte(strings.Repeat("keel builds the same image twice; ", 2000))
	for _, w := range []struct {
		off  int64
		data []byte
	}{
		{0, bytes.Repeat([]byte{0xeb, 0x63, 0x90}, 170)},
		{1 << 20, random},
		{3<<20 - 100, bytes.Repeat([]byte{7}, 300)},
		{72 << 20, text},
		{testSize - sectorSize, bytes.Repeat([]byte{0xab}, sectorSize)},
	} {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	return path, testSize
}

func writeVMDK(t testing.TB, raw string, size int64, out string, opts Options) {
	t.Helper()
	tooltest.Convert(t, func(w io.Writer, src io.ReaderAt, size int64) error {
		return WriteStreamOptimized(w, src, size, opts)
	}, raw, size, out)
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestQemuAcceptsImage(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	img := filepath.Join(dir, "disk.vmdk")
	writeVMDK(t, raw, size, img, Options{CID: 0x5eed1234})

	if out := tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", img); !strings.Contains(out, "No errors were found") {
		t.Errorf("qemu-img check:\n%s", out)
	}
	// compare inflates every grain qemu's way and checks the unallocated
	// ones read as the raw image's zeros.
	if out := tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, img); !strings.Contains(out, "Images are identical") {
		t.Errorf("qemu-img compare:\n%s", out)
	}

	var info struct {
		Format         string `json:"format"`
		VirtualSize    int64  `json:"virtual-size"`
		FormatSpecific struct {
			Data struct {
				CreateType string `json:"create-type"`
				CID        uint32 `json:"cid"`
				ParentCID  uint32 `json:"parent-cid"`
				Extents    []struct {
					Compressed  bool  `json:"compressed"`
					ClusterSize int64 `json:"cluster-size"`
				} `json:"extents"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	out := tooltest.Run(t, "qemu-img", "info", "--output=json", img)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	d := info.FormatSpecific.Data
	if info.Format != "vmdk" || info.VirtualSize != size || d.CreateType != "streamOptimized" ||
		d.CID != 0x5eed1234 || d.ParentCID != 0xffffffff ||
		len(d.Extents) != 1 || !d.Extents[0].Compressed || d.Extents[0].ClusterSize != grainSize {
		t.Errorf("qemu-img info:\n%s", out)
	}
}

// TestLibvmdkReadsImage reads the image with libyal's libvmdk, a second
// implementation that, unlike qemu, opens the extent by the name in the
// descriptor. It needs Debian's python3-libvmdk, which
// hack/install-deps.sh installs.
func TestLibvmdkReadsImage(t *testing.T) {
	py := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import pyvmdk").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Fatal("no python3 with pyvmdk: install Debian's python3-libvmdk (hack/install-deps.sh does)")
	}
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	img := filepath.Join(dir, "keel-disk1.vmdk")
	writeVMDK(t, raw, size, img, Options{CID: 1, FileName: "keel-disk1.vmdk"})
	const script = `
import hashlib, sys, pyvmdk
h = pyvmdk.handle()
h.open(sys.argv[1])
h.open_extent_data_files()
n, off, m = h.get_media_size(), 0, hashlib.sha256()
while off < n:
    k = min(1 << 20, n - off)
    m.update(h.read_buffer_at_offset(k, off))
    off += k
print(n, m.hexdigest())
`
	got := strings.TrimSpace(tooltest.Run(t, py, "-c", script, img))
	if want := strconv.Itoa(testSize) + " " + fileSHA(t, raw); got != want {
		t.Errorf("libvmdk read %q, want %q", got, want)
	}
}

// TestStreamLayout walks the file the way a streaming reader does, from
// marker to marker, and checks what the format requires of a stream.
func TestStreamLayout(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	img := filepath.Join(dir, "disk.vmdk")
	writeVMDK(t, raw, size, img, Options{CID: 7})
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if len(b)%sectorSize != 0 {
		t.Fatalf("file size %d is not whole sectors", len(b))
	}
	hdr, footer := b[:sectorSize], b[len(b)-2*sectorSize:len(b)-sectorSize]
	if le.Uint32(hdr[0:]) != magic || le.Uint32(hdr[4:]) != 3 || le.Uint32(hdr[8:]) != 0x30001 ||
		le.Uint64(hdr[12:]) != uint64(size/sectorSize) || le.Uint64(hdr[20:]) != 128 ||
		le.Uint64(hdr[56:]) != gdAtEnd || le.Uint64(hdr[64:]) != 128 || le.Uint16(hdr[77:]) != 1 ||
		string(hdr[73:77]) != "\n \r\n" {
		t.Errorf("header: % x", hdr[:80])
	}
	if !bytes.Equal(hdr[:56], footer[:56]) || !bytes.Equal(hdr[64:], footer[64:]) {
		t.Error("footer differs from the header beyond gdOffset")
	}
	desc := string(bytes.TrimRight(b[sectorSize:overHead*sectorSize], "\x00"))
	for _, want := range []string{"createType=\"streamOptimized\"", "CID=00000007", "RW 204803 SPARSE \"disk.vmdk\"", "ddb.adapterType = \"lsilogic\"", "ddb.virtualHWVersion"} {
		if !strings.Contains(desc, want) {
			t.Errorf("descriptor lacks %q:\n%s", want, desc)
		}
	}

	rawData, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	var wantGrains []uint64
	for off := int64(0); off < size; off += grainSize {
		if !allZeroBytes(rawData[off:min(off+grainSize, size)]) {
			wantGrains = append(wantGrains, uint64(off/sectorSize))
		}
	}
	var gotGrains []uint64
	var types []uint32
	gdOffset := le.Uint64(footer[56:])
	off := int64(overHead * sectorSize)
	for {
		if off+sectorSize > int64(len(b)) {
			t.Fatalf("stream runs off the end at %d", off)
		}
		val, n, typ := le.Uint64(b[off:]), int64(le.Uint32(b[off+8:])), le.Uint32(b[off+12:])
		if n != 0 {
			gotGrains = append(gotGrains, val)
			off += (grainMarkerLen + n + sectorSize - 1) / sectorSize * sectorSize
			continue
		}
		types = append(types, typ)
		if typ == markerGD && uint64(off/sectorSize+1) != gdOffset {
			t.Errorf("grain directory marker at sector %d, footer says directory at %d", off/sectorSize, gdOffset)
		}
		if typ == markerEOS {
			if off != int64(len(b))-sectorSize || val != 0 {
				t.Errorf("end-of-stream marker at %d of %d", off, len(b))
			}
			break
		}
		off += sectorSize + int64(val)*sectorSize
	}
	if !slices.Equal(gotGrains, wantGrains) {
		t.Errorf("grain LBAs %v, want %v", gotGrains, wantGrains)
	}
	// Tables 0, 2 and 3 hold grains; table 1 (32-64 MiB) is all zeros and
	// is left out.
	if want := []uint32{markerGT, markerGT, markerGT, markerGD, markerFooter, markerEOS}; !slices.Equal(types, want) {
		t.Errorf("metadata markers %v, want %v", types, want)
	}
	gd := b[gdOffset*sectorSize:]
	if le.Uint32(gd[4:]) != 0 || le.Uint32(gd[0:]) == 0 || le.Uint32(gd[8:]) == 0 || le.Uint32(gd[12:]) == 0 {
		t.Errorf("grain directory % x", gd[:16])
	}
}

func allZeroBytes(b []byte) bool { return bytes.Equal(b, zeroGrain[:len(b)]) }

func openVMDK(t *testing.T, path string) *Disk {
	t.Helper()
	d, err := Open(tooltest.Open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	img := filepath.Join(dir, "disk.vmdk")
	writeVMDK(t, raw, size, img, Options{CID: 1})
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	d := openVMDK(t, img)
	if d.Size() != size {
		t.Fatalf("Size() = %d, want %d", d.Size(), size)
	}
	var got bytes.Buffer
	// An odd buffer size makes reads straddle grains.
	if _, err := io.CopyBuffer(&got, io.NewSectionReader(d, 0, d.Size()), make([]byte, 100_003)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("content read back differs from the raw image")
	}

	// Concurrent readers share the grain cache.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := make([]byte, 5000)
			for _, off := range []int64{0, 1<<20 + int64(i)*4099, 3<<20 - 2600, 72<<20 + 17} {
				if _, err := d.ReadAt(p, off); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(p, want[off:off+int64(len(p))]) {
					t.Errorf("ReadAt(%d) differs", off)
				}
			}
		})
	}
	wg.Wait()

	p := make([]byte, 1000)
	if n, err := d.ReadAt(p, size-300); n != 300 || err != io.EOF || !bytes.Equal(p[:300], want[size-300:]) {
		t.Errorf("ReadAt across the end: %d, %v", n, err)
	}
	if n, err := d.ReadAt(p, size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end: %d, %v", n, err)
	}
	if _, err := d.ReadAt(p, -1); err == nil {
		t.Error("ReadAt(-1) succeeded")
	}
}

// TestOpenReadsQemuImages checks the reader against images qemu wrote:
// qemu's streamOptimized puts the grain directory up front instead of in a
// footer, and stops its last grain at the capacity.
func TestOpenReadsQemuImages(t *testing.T) {
	dir := t.TempDir()
	raw, _ := sparseRaw(t, dir)
	img := filepath.Join(dir, "qemu.vmdk")
	tooltest.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, img)
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	d := openVMDK(t, img)
	got := make([]byte, d.Size())
	if n, err := d.ReadAt(got, 0); n != len(want) || err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d of %d bytes (%v), equal %v", n, len(want), err, bytes.Equal(got[:n], want[:n]))
	}
}

func TestWriteIsReproducible(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	a, b := filepath.Join(dir, "a.vmdk"), filepath.Join(dir, "b.vmdk")
	writeVMDK(t, raw, size, a, Options{CID: 42})
	// One worker instead of several must not change a byte.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	writeVMDK(t, raw, size, b, Options{CID: 42})
	if fileSHA(t, a) != fileSHA(t, b) {
		t.Fatal("two writes differ")
	}
}

func TestTruncatedFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	img := filepath.Join(dir, "disk.vmdk")
	writeVMDK(t, raw, size, img, Options{CID: 1})
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{len(b) - 1, len(b) - sectorSize, len(b) - 3*sectorSize, len(b) / 2, 4 * sectorSize, 100} {
		_, err := Open(bytes.NewReader(b[:n]), int64(n))
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("Open of the first %d of %d bytes: %v", n, len(b), err)
		}
	}
	if _, err := Open(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Errorf("Open of the whole file: %v", err)
	}
}

func TestCorruptGrainIsReported(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	img := filepath.Join(dir, "disk.vmdk")
	writeVMDK(t, raw, size, img, Options{CID: 1})
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// The first grain marker sits right after the header grain.
	const first = overHead * sectorSize
	for _, c := range []struct {
		name string
		at   int
		want string
	}{
		{"marker LBA", first, "grain marker"},
		{"deflate data", first + grainMarkerLen + 40, "grain 0"},
		{"adler-32 trailer", first + grainMarkerLen + int(binary.LittleEndian.Uint32(good[first+8:])) - 1, "checksum"},
	} {
		b := bytes.Clone(good)
		b[c.at] ^= 0x55
		d, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: Open: %v", c.name, err)
		}
		if _, err := d.ReadAt(make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ReadAt: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}

func TestSmallAndOddSizes(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{sectorSize, 1000, grainSize, 3*grainSize + sectorSize, gtEntries*grainSize + 1} {
		data := bytes.Repeat([]byte{0x5a, 0, 0, 3}, int(size+3)/4)[:size]
		raw := filepath.Join(dir, "r.raw")
		if err := os.WriteFile(raw, data, 0o644); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, "r.vmdk")
		writeVMDK(t, raw, size, img, Options{CID: 9})
		tooltest.Run(t, "qemu-img", "check", "-f", "vmdk", img)
		if size%sectorSize == 0 {
			tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, img)
		}
		d := openVMDK(t, img)
		if want := (size + sectorSize - 1) / sectorSize * sectorSize; d.Size() != want {
			t.Errorf("size %d: Size() = %d, want %d", size, d.Size(), want)
		}
		got := make([]byte, d.Size())
		if _, err := d.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:size], data) || !allZeroBytes(got[size:]) {
			t.Errorf("size %d: content differs", size)
		}
	}
}

func TestAllZeroDisk(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "z.raw")
	const size = 40 << 20
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(raw, size); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "z.vmdk")
	writeVMDK(t, raw, size, img, Options{CID: 3})
	tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, img)
	// Header and descriptor grain, then GD marker, GD, footer marker,
	// footer, end-of-stream: no grain and no table.
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(overHead*sectorSize + 5*sectorSize); st.Size() != want {
		t.Errorf("file size %d, want %d", st.Size(), want)
	}
}

type failWriter struct{ after int }

var errDiskFull = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errDiskFull
	}
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	src := bytes.NewReader(bytes.Repeat([]byte{1}, 4<<20))
	if err := WriteStreamOptimized(io.Discard, src, 0, Options{}); err == nil {
		t.Error("size 0 accepted")
	}
	if err := WriteStreamOptimized(io.Discard, src, 1<<20, Options{CID: 0xffffffff}); err == nil {
		t.Error("reserved CID accepted")
	}
	if err := WriteStreamOptimized(io.Discard, src, 1<<20, Options{FileName: "a\"b"}); err == nil {
		t.Error("quote in file name accepted")
	}
	err := WriteStreamOptimized(io.Discard, src, 5<<20, Options{})
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "read source") {
		t.Errorf("short source: %v", err)
	}
	err = WriteStreamOptimized(&failWriter{after: overHead * sectorSize}, src, 4<<20, Options{})
	if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "write grain") {
		t.Errorf("failing writer: %v", err)
	}
}
