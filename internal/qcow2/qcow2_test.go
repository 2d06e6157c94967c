package qcow2

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/tooltest"
)

// sparseRaw writes a raw image whose data straddles L2-table boundaries and
// ends in a partial cluster.
func sparseRaw(t *testing.T, dir string) (string, int64) {
	t.Helper()
	const size = 600<<20 + 512
	path := filepath.Join(dir, "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, off := range []int64{0, 1 << 20, 512<<20 - 100, 512 << 20, size - 512} {
		chunk := bytes.Repeat([]byte{byte(i + 1)}, 300)
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	return path, size
}

func writeQcow2(t *testing.T, raw string, size int64, out string) {
	t.Helper()
	tooltest.Convert(t, Write, raw, size, out)
}

func TestQemuImgAcceptsImage(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	a := filepath.Join(dir, "a.qcow2")
	writeQcow2(t, raw, size, a)

	check := tooltest.Run(t, "qemu-img", "check", a)
	if !strings.Contains(check, "No errors were found") {
		t.Errorf("qemu-img check:\n%s", check)
	}
	info := tooltest.Run(t, "qemu-img", "info", "--output=json", a)
	if !strings.Contains(info, `"virtual-size": 629146112`) || !strings.Contains(info, `"format": "qcow2"`) {
		t.Errorf("qemu-img info:\n%s", info)
	}
	tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, a)

	// Five data clusters (the write straddling 512 MiB touches two) plus
	// header, L1, refcount table, one refcount block and two L2 tables.
	st, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(11 * clusterSize); st.Size() != want {
		t.Errorf("file size %d, want %d", st.Size(), want)
	}
}

func TestWriteIsReproducible(t *testing.T) {
	dir := t.TempDir()
	raw, size := sparseRaw(t, dir)
	a, b := filepath.Join(dir, "a.qcow2"), filepath.Join(dir, "b.qcow2")
	writeQcow2(t, raw, size, a)
	writeQcow2(t, raw, size, b)
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Fatal("two writes differ")
	}
}

func TestEmptyAndTinyImages(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{0, 512, clusterSize + 512} {
		raw := filepath.Join(dir, "r.raw")
		if err := os.WriteFile(raw, bytes.Repeat([]byte{7}, int(size)), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "r.qcow2")
		writeQcow2(t, raw, size, out)
		tooltest.Run(t, "qemu-img", "check", out)
		tooltest.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, out)
	}
}

func TestManyRefcountBlocks(t *testing.T) {
	// 2 GiB+ of non-zero data needs a second refcount block; build the layout
	// only (no data written) and check the fixed point covers every cluster.
	data := make([]int64, refcountEntries+10)
	for i := range data {
		data[i] = int64(i)
	}
	l := plan(int64(len(data))*clusterSize, data)
	if l.rbClusters != 2 || l.total > l.rbClusters*refcountEntries {
		t.Fatalf("rb=%d total=%d", l.rbClusters, l.total)
	}
	if l.dataOff+int64(len(data))*clusterSize != l.total*clusterSize {
		t.Fatalf("layout does not end at total: %+v", l.total)
	}
}
