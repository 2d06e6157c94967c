package uki_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/keelos/keel/internal/imageread/imagetest"
	"github.com/keelos/keel/internal/uki"
)

func build(t testing.TB, kernel, initrd []byte) []byte {
	var b bytes.Buffer
	if err := uki.Build(&b, imagetest.Stub(), kernel, initrd, "console=ttyS0", "ID=keel\n"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSectionsReadBack reads every section Build added, without the
// padding to the file alignment.
func TestSectionsReadBack(t *testing.T) {
	kernel, initrd := bytes.Repeat([]byte("KERNEL"), 1000), []byte("070701 and some")
	img := build(t, kernel, initrd)
	u, err := uki.Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{".linux": kernel, ".initrd": initrd, ".cmdline": []byte("console=ttyS0"), ".osrel": []byte("ID=keel\n")} {
		sec, err := u.Section(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(sec)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if _, err := u.Section(".uname"); err == nil {
		t.Error("a missing section was found")
	}
}

// FuzzSection checks that a section found lies inside the file, whatever
// its PE headers say.
func FuzzSection(f *testing.F) {
	f.Add(build(f, []byte("KERNEL"), []byte("070701")))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := uki.Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		sec, err := u.Section(".initrd")
		if err != nil {
			return
		}
		_, off, n := sec.Outer()
		if off < 0 || n < 0 || off+n > int64(len(data)) {
			t.Fatalf(".initrd at %d, %d bytes, in %d", off, n, len(data))
		}
		if _, err := io.Copy(io.Discard, sec); err != nil {
			t.Fatalf(".initrd at %d, %d bytes of %d: %v", off, n, len(data), err)
		}
	})
}
