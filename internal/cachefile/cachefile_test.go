package cachefile

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func digestOf(t *testing.T, s string) string {
	t.Helper()
	d, _, err := Sum(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenChecksContentAndKind(t *testing.T) {
	dir := t.TempDir()
	var v Verifier
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("content"), 0o444); err != nil {
		t.Fatal(err)
	}
	d := digestOf(t, "content")
	f, err := v.Open(p, d, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "content" {
		t.Errorf("read %q after the check: not at the start", got)
	}
	for _, tc := range []struct {
		name   string
		digest string
		size   int64
	}{
		{"wrong digest", digestOf(t, "other"), -1},
		{"wrong size", d, 8},
	} {
		if _, err := v.Open(p, tc.digest, tc.size); !IsMismatch(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := v.Open(filepath.Join(dir, "missing"), d, -1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A symlink, even to the right content, and a FIFO (which must not
	// block) are not cache files.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{link, fifo, dir} {
		if _, err := v.Open(q, d, -1); !IsMismatch(err) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// A file this process hashed and remembered is hashed again once it
// changed, even when the change keeps its size and mtime.
func TestOpenNoticesChangeAfterItWasRemembered(t *testing.T) {
	var v Verifier
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(racyWindow + 100*time.Millisecond) // old enough to be remembered
	d := digestOf(t, "content")
	f, err := v.Open(p, d, -1)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if len(v.seen) != 1 {
		t.Fatalf("an old file was not remembered: %v", v.seen)
	}
	if err := os.WriteFile(p, []byte("CONTENT"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Open(p, d, -1); !IsMismatch(err) {
		t.Errorf("changed file passed: %v", err)
	}
}

// A file changed just before it was hashed is not remembered: a change in
// the same timestamp tick would not show.
func TestOpenDoesNotRememberRecentFiles(t *testing.T) {
	var v Verifier
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := v.Open(p, digestOf(t, "content"), -1)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if len(v.seen) != 0 {
		t.Errorf("a file changed a moment ago was remembered")
	}
}

func TestVerifyDir(t *testing.T) {
	dir := t.TempDir()
	put := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := digestOf(t, "good")
	put(strings.TrimPrefix(good, "sha256:"), "good")
	bad := put(strings.TrimPrefix(digestOf(t, "bad"), "sha256:"), "BAD")
	stray := put("notes.txt", "x")
	put(".put-1", "in progress")
	n, problems, err := VerifyDir(context.Background(), dir, func(name string) bool { return strings.HasPrefix(name, ".put-") })
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || len(problems) != 2 || problems[0].Path != bad && problems[1].Path != bad {
		t.Fatalf("checked %d, problems %+v", n, problems)
	}
	for _, p := range problems {
		if p.Path != bad && p.Path != stray {
			t.Errorf("unexpected problem %+v", p)
		}
	}
}

func TestRemoveStaleKeepsTemporariesBeingWritten(t *testing.T) {
	dir := t.TempDir()
	live, err := CreateTemp(dir, "blob-*")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.WriteString("half a download"); err != nil {
		t.Fatal(err)
	}
	// Left by a killed process: nobody holds its lock.
	dead, err := CreateTemp(dir, "blob-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.WriteString("abandoned"); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	other := filepath.Join(dir, "keep")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n, freed, err := RemoveStale(dir, func(name string) bool { return strings.HasPrefix(name, "blob-") })
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || freed != int64(len("abandoned")) {
		t.Errorf("removed %d files, %d bytes", n, freed)
	}
	if _, err := os.Stat(dead.Name()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abandoned temporary survived: %v", err)
	}
	for _, p := range []string{live.Name(), other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
