// Package cachefiletest damages cache files as a failing disk would and
// collects warnings, for the tests of the packages that keep such files.
package cachefiletest

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// FlipByte inverts the byte at off (counted from the end when negative)
// of the file at p, in place, even when the file is read-only.
func FlipByte(t testing.TB, p string, off int64) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, st.Mode().Perm()|0o200); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(p, st.Mode().Perm())
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off < 0 {
		off += st.Size()
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Warnings collects warning messages; Add is the function to hand over.
type Warnings struct {
	mu   sync.Mutex
	msgs []string
}

// Add records msg.
func (w *Warnings) Add(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

// String is every message so far, one a line.
func (w *Warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}
