// Package tooltest holds what the tests of keel's writers share: running
// the outside tools (qemu-img, sgdisk, fsck.vfat, xorriso, tar) that check
// their output, and converting a raw disk file with a writer.
package tooltest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Need fails the test when a tool it runs is not installed: make test
// installs every one (hack/install-deps.sh), so a missing tool is a broken
// setup, never a reason to pass without the check.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run hack/install-deps.sh", tool)
		}
	}
}

// Run runs a tool and returns its combined output, failing the test (with
// that output) if it exits non-zero.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Convert writes the raw disk file raw, of size bytes, to the new file out
// with write.
func Convert(t testing.TB, write func(w io.Writer, src io.ReaderAt, size int64) error, raw string, size int64, out string) {
	t.Helper()
	src, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := write(dst, src, size); err != nil {
		t.Fatal(err)
	}
}

// SparseRaw creates a raw disk file of size bytes in dir holding a 1 MiB
// extent of patterned data every stride bytes, the rest sparse zeros: the
// disk the writers' benchmarks convert. The file is closed with the test.
func SparseRaw(t testing.TB, dir string, size, stride int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	extent := make([]byte, 1<<20)
	for i := range extent {
		extent[i] = byte(i*31) ^ byte(i>>9) | 1
	}
	for off := int64(0); off < size; off += stride {
		if _, err := f.WriteAt(extent[:min(int64(len(extent)), size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

// Open opens path for the test's duration and returns it with its size.
func Open(t testing.TB, path string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}
