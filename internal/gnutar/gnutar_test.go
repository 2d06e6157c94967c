package gnutar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/tooltest"
)

var mtime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// sparseFile makes a file of size bytes with data at the given offsets
// (each run 100 KiB of a pattern), zeros elsewhere.
func sparseFile(t *testing.T, dir string, size int64, offs ...int64) string {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 100<<10)
	for i := range data {
		data[i] = byte(i%251) | 1
	}
	for _, off := range offs {
		if _, err := f.WriteAt(data[:min(int64(len(data)), size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeArchive(t *testing.T, raw, out string, gz bool) {
	t.Helper()
	src, size := tooltest.Open(t, raw)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		w = zw
	}
	if err := WriteSparse(w, "disk.raw", src, size, mtime); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGNUTarExtractsIdenticalFile writes archives with few and with many
// data runs (past the header's four map entries, into extension blocks),
// ending in data and in a hole, and has GNU tar extract them.
func TestGNUTarExtractsIdenticalFile(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
		offs []int64
	}{
		{"one run, ends in a hole", 8 << 20, []int64{1 << 20}},
		{"ends in data", 4<<20 + 1000, []int64{0, 4<<20 + 1000 - 300}},
		{"many runs", 64 << 20, []int64{0, 2 << 20, 4 << 20, 6 << 20, 8 << 20, 10 << 20, 12 << 20, 14 << 20,
			16 << 20, 18 << 20, 20 << 20, 22 << 20, 24 << 20, 26 << 20, 28 << 20, 30 << 20, 32 << 20,
			34 << 20, 36 << 20, 38 << 20, 40 << 20, 42 << 20, 44 << 20, 46 << 20, 48 << 20, 50 << 20, 63 << 20}},
		{"empty", 3 << 20, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := sparseFile(t, dir, c.size, c.offs...)
			tgz := filepath.Join(dir, "disk.tar.gz")
			writeArchive(t, raw, tgz, true)
			list := tooltest.Run(t, "tar", "-tzvf", tgz)
			if !strings.Contains(list, " disk.raw") || strings.Count(list, "\n") != 1 {
				t.Errorf("tar -tzvf: want disk.raw alone:\n%s", list)
			}
			out := filepath.Join(dir, "out")
			os.Mkdir(out, 0o755)
			tooltest.Run(t, "tar", "-xzf", tgz, "-C", out)
			tooltest.Run(t, "cmp", raw, filepath.Join(out, "disk.raw"))
		})
	}
}

func TestArchiveTarReadsItBack(t *testing.T) {
	dir := t.TempDir()
	raw := sparseFile(t, dir, 16<<20, 0, 5<<20, 9<<20)
	archive := filepath.Join(dir, "disk.tar")
	writeArchive(t, raw, archive, false)
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(data)%(20*512) != 0 {
		t.Errorf("archive of %d bytes is not whole 10 KiB records", len(data))
	}
	if len(data) > 1<<20 {
		t.Errorf("archive of %d bytes: the holes were stored", len(data))
	}
	tr := tar.NewReader(bytes.NewReader(data))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "disk.raw" || h.Size != 16<<20 || h.Mode != 0o644 || h.Uid != 0 || h.Uname != "" || !h.ModTime.Equal(mtime) {
		t.Errorf("header %+v", h)
	}
	got, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(raw)
	if !bytes.Equal(got, want) {
		t.Error("content read back differs")
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("second entry: %v, want EOF", err)
	}
	again := filepath.Join(dir, "again.tar")
	writeArchive(t, raw, again, false)
	if b, _ := os.ReadFile(again); !bytes.Equal(b, data) {
		t.Error("two writes differ")
	}
	// From memory every byte is scanned instead of the file's extents:
	// the archive must not depend on how the disk file is allocated.
	var mem bytes.Buffer
	if err := WriteSparse(&mem, "disk.raw", bytes.NewReader(want), int64(len(want)), mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mem.Bytes(), data) {
		t.Error("the archive of the same content read from memory differs")
	}
}

// TestLargeSizeUsesBase256 checks a file past octal's 8 GiB: GNU tar lists
// its full size.
func TestLargeSizeUsesBase256(t *testing.T) {
	dir := t.TempDir()
	const size = 9 << 30
	raw := sparseFile(t, dir, size, 0, size-4096)
	archive := filepath.Join(dir, "disk.tar")
	writeArchive(t, raw, archive, false)
	if list := tooltest.Run(t, "tar", "-tvf", archive); !strings.Contains(list, "9663676416") {
		t.Errorf("tar -tvf: no size 9663676416:\n%s", list)
	}
}

func TestNameChecked(t *testing.T) {
	if err := WriteSparse(io.Discard, "", bytes.NewReader(nil), 0, mtime); err == nil {
		t.Error("empty name accepted")
	}
	if err := WriteSparse(io.Discard, strings.Repeat("x", 100), bytes.NewReader(nil), 0, mtime); err == nil {
		t.Error("100-byte name accepted")
	}
}
