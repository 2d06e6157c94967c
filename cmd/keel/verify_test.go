package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/build"
)

// TestMain lets the test binary be the child of --verify-reproducible, as
// keel is: rebuildInChild runs os.Executable().
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == rebuildCommand {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// The second build runs in a child under umask 077 (and the zone +13:45,
// which the child checks before it builds): the child's cache directories
// are private, and its failure is reported, with its reason on stderr.
func TestRebuildRunsInAChildUnderItsOwnUmask(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "build.toml")
	// Fails after the cache is opened: the kernel package does not exist.
	if err := os.WriteFile(specFile, []byte("name = \"x\"\n[kernel]\nimage = \"./no-kernel\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	g := &globalFlags{}
	opts := build.Options{Specs: []string{specFile}, Dir: filepath.Join(dir, "out"), CacheDir: filepath.Join(dir, "cache")}
	_, err := g.rebuildInChild(&stderr)(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "the second build failed") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(stderr.String(), "no-kernel") {
		t.Errorf("the child did not say why: %q", stderr.String())
	}
	st, err := os.Stat(filepath.Join(dir, "cache", "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("the child's cache directory has mode %v, want 0700 (umask 077)", perm)
	}
}
