package fstree

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/cachefile"
	"github.com/keelos/keel/internal/cachefile/cachefiletest"
)

// corrupt damages the stored file of digest in place, keeping its size.
func corrupt(t *testing.T, s *Store, digest string) {
	t.Helper()
	cachefiletest.FlipByte(t, s.Path(digest), -1)
}

func TestStoreOpenRefusesCorruptFileBeforeAnyByte(t *testing.T) {
	tr := newTree(t)
	if err := tr.AddFile("f", 0o644, 0, 0, strings.NewReader("good content")); err != nil {
		t.Fatal(err)
	}
	e, _ := tr.Get("f")
	corrupt(t, tr.Store(), e.Digest)
	if rc, err := tr.Open(e); err == nil || !strings.Contains(err.Error(), "corrupt") {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("open of corrupt content: %v", err)
	}
	if _, err := os.Stat(tr.Store().Path(e.Digest)); !os.IsNotExist(err) {
		t.Errorf("corrupt file not removed: %v", err)
	}
	if err := tr.WriteTar(io.Discard, time.Unix(0, 0)); err == nil {
		t.Error("WriteTar of a corrupt store: no error")
	}
}

// The next build (a new process, so a new Store on the same directory)
// puts the content again as it unpacks the layer; that repairs the file,
// with a warning, and what it then reads is the right content.
func TestStorePutRepairsCorruptFile(t *testing.T) {
	dir := t.TempDir()
	first, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	const content = "the kernel module"
	digest := mustPut(t, first, content)
	corrupt(t, first, digest)

	w := &cachefiletest.Warnings{}
	next, err := NewStore(dir, WithWarnings(w.Add))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustPut(t, next, content); got != digest {
		t.Fatalf("digest %s, want %s", got, digest)
	}
	if !strings.Contains(w.String(), "corrupt") || !strings.Contains(w.String(), strings.TrimPrefix(digest, "sha256:")) {
		t.Errorf("warning %q", w)
	}
	f, err := next.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != content {
		t.Errorf("repaired content %q, %v", b, err)
	}
	// A good file is kept, without a warning, by this process and the next.
	quiet := &cachefiletest.Warnings{}
	again, err := NewStore(dir, WithWarnings(quiet.Add))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, again, content)
	mustPut(t, again, content)
	if quiet.String() != "" {
		t.Errorf("warning for a good file: %q", quiet)
	}
}

// Whatever took a file's place (here an empty directory) is replaced too.
func TestStorePutReplacesWhatIsNotAFile(t *testing.T) {
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digest := mustPut(t, s, "content")
	if err := os.Remove(s.Path(digest)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.Path(digest), 0o755); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "content")
	f, err := s.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestStoreVerifyAndClean(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := mustPut(t, s, "good")
	bad := mustPut(t, s, "bad")
	corrupt(t, s, bad)
	// Left by a keel killed while it stored a file.
	abandoned := filepath.Join(dir, "sha256", ".put-1234")
	if err := os.WriteFile(abandoned, bytes.Repeat([]byte{1}, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	// Being written by a live process.
	live, err := cachefile.CreateTemp(filepath.Join(dir, "sha256"), tempPrefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	n, problems, err := s.Verify(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || len(problems) != 1 || problems[0].Path != s.Path(bad) || !cachefile.IsMismatch(problems[0].Err) {
		t.Fatalf("verify: %d checked, %+v", n, problems)
	}
	if _, err := os.Stat(s.Path(bad)); err != nil {
		t.Errorf("verify without repair changed the store: %v", err)
	}
	if _, problems, _ := s.Verify(context.Background(), true); len(problems) != 1 {
		t.Fatalf("verify --repair: %+v", problems)
	}
	if _, err := os.Stat(s.Path(bad)); !os.IsNotExist(err) {
		t.Errorf("repair left the corrupt file: %v", err)
	}
	if _, err := os.Stat(s.Path(good)); err != nil {
		t.Errorf("repair removed a good file: %v", err)
	}

	files, freed, err := s.Clean()
	if err != nil {
		t.Fatal(err)
	}
	if files != 1 || freed != 100 {
		t.Errorf("clean freed %d files, %d bytes; want 1, 100", files, freed)
	}
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Errorf("abandoned temporary survived: %v", err)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Errorf("a temporary being written was removed: %v", err)
	}
}
