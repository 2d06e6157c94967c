package build

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/spec"
)

const sourceSpec = `name = "src"
[kernel]
image = "./no-kernel"

[[file]]
path = "/etc/shadow"
source = "src"
`

// A spec's [[file]] source that is a symlink to a host file (standing in
// for /etc/shadow) or to /dev/zero, or a FIFO, fails the build before
// anything is resolved, naming the spec file, the entry and why.
func TestSpecSourcesAreRefused(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		make func(src string) error
		why  string
	}{
		{"symlink out", func(src string) error { return os.Symlink(secret, src) }, "leads out of"},
		{"dev zero", func(src string) error { return os.Symlink("/dev/zero", src) }, "through the symlink src -> /dev/zero"},
		{"fifo", func(src string) error { return unix.Mkfifo(src, 0o644) }, "is a FIFO"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			specFile := filepath.Join(dir, "build.toml")
			if err := os.WriteFile(specFile, []byte(sourceSpec), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := c.make(filepath.Join(dir, "src")); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			start := time.Now()
			_, err := Run(context.Background(), Options{Specs: []string{specFile}, Dir: out, CacheDir: filepath.Join(dir, "cache")})
			if err == nil {
				t.Fatal("the build read the source")
			}
			t.Log(err)
			for _, want := range []string{specFile + `: [[file]] /etc/shadow: source "src" `, c.why} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refused after %v", d)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("the refused build made its output directory: %v", err)
			}
		})
	}
}

// A source that is a symlink to a file inside the spec's directory is
// placed with the file's content.
func TestSpecSourceLinkInside(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "motd"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("etc/motd", filepath.Join(dir, "motd")); err != nil {
		t.Fatal(err)
	}
	store, err := fstree.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tree := fstree.New(store)
	f := spec.File{Path: "/etc/motd", Source: "motd", Dir: dir}
	if err := checkSources(context.Background(), &spec.Spec{Files: []spec.File{f}}); err != nil {
		t.Fatal(err)
	}
	if err := addFile(context.Background(), tree, f); err != nil {
		t.Fatal(err)
	}
	e, ok := tree.Get("etc/motd")
	if !ok || !e.Mode.IsRegular() {
		t.Fatalf("/etc/motd: %+v", e)
	}
	rc, err := tree.Open(e)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if data, _ := io.ReadAll(rc); string(data) != "hello\n" {
		t.Fatalf("/etc/motd holds %q", data)
	}
}

// TestLockWithoutAnArchitectureSaysWhatToRun checks that a build for an
// architecture build.lock was not written for fails in one line naming
// the keel lock command that covers both.
func TestLockWithoutAnArchitectureSaysWhatToRun(t *testing.T) {
	f := lock.File{Images: []lock.Image{{Ref: "./init", Arch: "amd64", Digest: "sha256:00"}}}
	if err := checkLockArchs(f, []string{"amd64"}); err != nil {
		t.Fatalf("amd64 lock, amd64 build: %v", err)
	}
	err := checkLockArchs(f, []string{"arm64"})
	want := "--locked: build.lock has nothing for arm64 (it was written for amd64): run `keel lock --arch amd64,arm64`"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
