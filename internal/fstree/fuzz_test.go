package fstree

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	f.Add(makeTar(f, reg("../../x", "e")))
	f.Add(makeTar(f, symlink("a", "/"), reg("a/x", "e")))
	f.Add(makeTar(f, symlink("a", "../.."), symlink("b", "a/.."), reg("b/x", "e")))
	f.Add(makeTar(f, hardlink("l", "/etc/passwd")))
	f.Add(makeTar(f, reg("d/f", "1"), reg("d/.wh..wh..opq", ""), reg(".wh.d", ""), dir("d")))
	f.Add(makeTar(f, reg("f", "1"), hardlink("g", "f"), symlink("s", "f"), reg("s", "2")))
	f.Add([]byte{})
}

func FuzzApplyTar(f *testing.F) {
	fuzzSeeds(f)
	// One store for all inputs: a directory per input makes fuzzing crawl.
	storeDir := f.TempDir()
	s, err := NewStore(storeDir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := New(s)
		_ = tr.ApplyTar(bytes.NewReader(data), ApplyOptions{AllowDevices: true})
		for _, e := range tr.Entries() {
			if !fs.ValidPath(e.Path) || e.Path == "." {
				t.Fatalf("entry with unsafe path %q", e.Path)
			}
		}
		// The store holds content files only.
		entries, _ := os.ReadDir(storeDir)
		if len(entries) != 1 || entries[0].Name() != "sha256" {
			t.Fatalf("store dir holds %v", entries)
		}
	})
}

func FuzzExtractDir(f *testing.F) {
	fuzzSeeds(f)
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		root := filepath.Join(base, "root")
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
		_ = ExtractDir(root, bytes.NewReader(data), ApplyOptions{})
		if got := outside(t, base); len(got) > 0 {
			t.Fatalf("written outside root: %v", got)
		}
	})
}
