package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// slowOpener serves content in small pieces with pauses, so concurrent
// fetches overlap, and counts how often it is called.
func slowOpener(content []byte, calls *atomic.Int32) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) {
		if calls != nil {
			calls.Add(1)
		}
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < len(content); i += 4096 {
				pw.Write(content[i:min(i+4096, len(content))])
				time.Sleep(time.Millisecond)
			}
			pw.Close()
		}()
		return pr, nil
	}
}

func testContent() []byte {
	return bytes.Repeat([]byte("keel cache test content\n"), 4000) // ~96 KiB
}

func openCache(t *testing.T, dir string) *Cache {
	t.Helper()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes, not the expected content", p, len(got))
	}
}

func TestFetchConcurrentGoroutines(t *testing.T) {
	c := openCache(t, t.TempDir())
	content := testContent()
	var calls atomic.Int32
	var wg sync.WaitGroup
	paths := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			paths[i], errs[i] = c.Fetch(context.Background(), digestOf(content), int64(len(content)), slowOpener(content, &calls))
		})
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	if paths[0] != paths[1] {
		t.Errorf("paths differ: %s %s", paths[0], paths[1])
	}
	checkFile(t, paths[0], content)
	if n := calls.Load(); n != 1 {
		t.Errorf("downloaded %d times, want once", n)
	}
	assertNoTmp(t, c)
}

func assertNoTmp(t *testing.T, c *Cache) {
	t.Helper()
	if left, _ := os.ReadDir(filepath.Join(c.Dir(), "tmp")); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// The child side of TestFetchConcurrentProcesses: fetch and print the path.
func TestMain(m *testing.M) {
	if dir := os.Getenv("KEEL_CACHE_TEST_CHILD"); dir != "" {
		c, err := Open(dir)
		if err == nil {
			content := testContent()
			var p string
			p, err = c.Fetch(context.Background(), digestOf(content), int64(len(content)), slowOpener(content, nil))
			fmt.Println(p)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFetchConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 2 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "KEEL_CACHE_TEST_CHILD="+dir)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v: %s", i, err, outs[i])
		}
	}
	p0, p1 := strings.TrimSpace(outs[0].String()), strings.TrimSpace(outs[1].String())
	if p0 != p1 || p0 == "" {
		t.Fatalf("paths %q %q", p0, p1)
	}
	checkFile(t, p0, testContent())
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if len(blobs) != 1 {
		t.Errorf("blobs: %v", blobs)
	}
	assertNoTmp(t, openCache(t, dir))
}

func TestFetchRefetchesCorruptBlob(t *testing.T) {
	c := openCache(t, t.TempDir())
	content := testContent()
	var calls atomic.Int32
	fetch := func(c *Cache) string {
		t.Helper()
		p, err := c.Fetch(context.Background(), digestOf(content), int64(len(content)), slowOpener(content, &calls))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := fetch(c)
	fetch(c)
	if calls.Load() != 1 {
		t.Fatalf("held blob downloaded again")
	}
	// Same size, different bytes: only the digest can tell.
	bad := bytes.ToUpper(content)
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	checkFile(t, fetch(c), content)
	if calls.Load() != 2 {
		t.Errorf("corrupt blob not re-fetched (%d downloads)", calls.Load())
	}
	// Truncated, seen by another process (a fresh Cache).
	if err := os.Truncate(p, 100); err != nil {
		t.Fatal(err)
	}
	checkFile(t, fetch(openCache(t, c.Dir())), content)
	if calls.Load() != 3 {
		t.Errorf("truncated blob not re-fetched (%d downloads)", calls.Load())
	}
}

func TestFetchRefusesWrongContent(t *testing.T) {
	c := openCache(t, t.TempDir())
	want := []byte("the real thing")
	got := []byte("a tampered download")
	_, err := c.Fetch(context.Background(), digestOf(want), -1, func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(got)), nil
	})
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), digestOf(want)) || !strings.Contains(err.Error(), digestOf(got)) {
		t.Errorf("error does not name both digests: %v", err)
	}
	var mm *MismatchError
	if !errors.As(err, &mm) {
		t.Errorf("not a *MismatchError: %T", err)
	}
	p, _ := c.BlobPath(digestOf(want))
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad content was stored: %v", err)
	}
	// Right bytes, wrong announced size.
	_, err = c.Fetch(context.Background(), digestOf(want), 3, func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(want)), nil
	})
	if err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("size mismatch: %v", err)
	}
	assertNoTmp(t, c)
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("KEEL_CACHE", "/x/keel-cache")
	if d := DefaultDir(); d != "/x/keel-cache" {
		t.Errorf("KEEL_CACHE: %s", d)
	}
	t.Setenv("KEEL_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d := DefaultDir(); d != "/xdg/keel" {
		t.Errorf("XDG_CACHE_HOME: %s", d)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d := DefaultDir(); d != "/home/u/.cache/keel" {
		t.Errorf("HOME: %s", d)
	}
}
