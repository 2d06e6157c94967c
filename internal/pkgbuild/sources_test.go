package pkgbuild

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// filesPackage is a package of one [[file]] whose source is "src".
func filesPackage(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pkg")
	writeFiles(t, dir, map[string]string{
		"real/motd": "inside\n",
		"package.toml": `name = "files"

[[file]]
path = "/etc/motd"
source = "src"
`,
	})
	return dir
}

// A [[file]] source of a package is read only when it is a regular file
// inside the package directory: a symlink to a host file (standing in for
// /etc/shadow) or to /dev/zero and a FIFO are refused at once, naming
// package.toml, the entry and why; a symlink inside still works.
func TestPackageSourcesStayInside(t *testing.T) {
	ctx := context.Background()
	secret := filepath.Join(t.TempDir(), "shadow")
	writeFiles(t, filepath.Dir(secret), map[string]string{"shadow": "root:secret\n"})
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
			dir := filesPackage(t)
			if err := c.make(filepath.Join(dir, "src")); err != nil {
				t.Fatal(err)
			}
			b := &Builder{Cache: newCache(t)}
			start := time.Now()
			_, err := b.Key(ctx, dir, "amd64")
			if err == nil {
				t.Fatal("the source was read")
			}
			for _, want := range []string{filepath.Join(dir, "package.toml") + ": [[file]] /etc/motd: source \"src\" ", c.why} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			t.Log(err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refused after %v", d)
			}
		})
	}
	t.Run("symlink inside", func(t *testing.T) {
		dir := filesPackage(t)
		if err := os.Symlink("real/motd", filepath.Join(dir, "src")); err != nil {
			t.Fatal(err)
		}
		b := &Builder{Cache: newCache(t)}
		img, err := b.Build(ctx, dir, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if f := layerFiles(t, img)["/etc/motd"]; string(f.data) != "inside\n" {
			t.Fatalf("/etc/motd holds %q", f.data)
		}
	})
}

// A package directory is what a [build] copies from: an entry that is not
// a regular file, directory or symlink inside it is refused even when no
// [[file]] names it.
func TestPackageDirectoryHoldsOnlyFilesInside(t *testing.T) {
	for name, make := range map[string]func(p string) error{
		"leak": func(p string) error { return os.Symlink("/etc", p) },
		"fifo": func(p string) error { return unix.Mkfifo(p, 0o644) },
	} {
		dir := filesPackage(t)
		if err := os.Symlink("real/motd", filepath.Join(dir, "src")); err != nil {
			t.Fatal(err)
		}
		if err := make(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		b := &Builder{Cache: newCache(t)}
		if _, err := b.Key(context.Background(), dir, "amd64"); err == nil || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("%s: got %v, want it refused by name", name, err)
		}
	}
}
