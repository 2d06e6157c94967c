package build

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ulikunitz/xz"

	"github.com/keelos/keel/internal/kmod/kmodtest"
	"github.com/keelos/keel/internal/testenv"
)

// moduleSpec writes a spec whose kernel image has a module tree (xz
// compressed, as Debian ships it) and asks for module a, which needs b
// and c; d is not selected. It returns the spec's path.
func moduleSpec(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	xzOf := func(modinfo string) string {
		var buf bytes.Buffer
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(kmodtest.ModuleELF(t, modinfo))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	const mods = "lib/modules/6.1.0-test/"
	writeLayout(t, filepath.Join(dir, "kernel"), imageOf(t, map[string]string{
		"kernel":                             "not really a kernel",
		mods + "modules.builtin":             "kernel/fs/ext4/ext4.ko\n",
		mods + "kernel/drivers/a.ko.xz":      xzOf("name=a\x00depends=b,c-dash,ext4\x00"),
		mods + "kernel/drivers/b.ko.xz":      xzOf("name=b\x00depends=c_dash\x00"),
		mods + "kernel/drivers/c-dash.ko.xz": xzOf("depends=\x00"),
		mods + "kernel/drivers/unused.ko.xz": xzOf("name=unused\x00"),
	}, v1.Config{}))
	p := filepath.Join(dir, "build.toml")
	doc := "name = \"mods\"\narch = [\"amd64\"]\n\n[kernel]\nimage = \"./kernel\"\nmodules = [\"a\"]\n\n[output]\nformats = [\"tar\"]\n"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// buildModules builds specFile with cache and returns the tar output and
// what the build printed.
func buildModules(t *testing.T, specFile, cache string) ([]byte, string) {
	t.Helper()
	var progress bytes.Buffer
	out := filepath.Join(filepath.Dir(specFile), "out")
	if _, err := Run(context.Background(), Options{Specs: []string{specFile}, Dir: out, CacheDir: cache, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "mods-amd64.tar"))
	if err != nil {
		t.Fatal(err)
	}
	return data, progress.String()
}

func tarFile(t *testing.T, data []byte, name string) (string, bool) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b), true
		}
	}
}

func TestModuleIndexIsKeptAndOutputsAreTheSame(t *testing.T) {
	specFile := moduleSpec(t)
	cache := t.TempDir()
	const reading = "kernel: reading the 4 modules of this kernel"

	first, progress := buildModules(t, specFile, cache)
	if !strings.Contains(progress, reading) {
		t.Fatalf("the first build did not say it reads the modules:\n%s", progress)
	}
	list, _ := tarFile(t, first, "etc/keel/modules")
	want := "/lib/modules/6.1.0-test/kernel/drivers/c-dash.ko.xz\n/lib/modules/6.1.0-test/kernel/drivers/b.ko.xz\n/lib/modules/6.1.0-test/kernel/drivers/a.ko.xz\n"
	if list != want {
		t.Fatalf("/etc/keel/modules:\n%s\nwant:\n%s", list, want)
	}
	if _, ok := tarFile(t, first, "lib/modules/6.1.0-test/kernel/drivers/unused.ko.xz"); ok {
		t.Fatal("a module nobody asked for is in the image")
	}

	second, progress := buildModules(t, specFile, cache)
	if strings.Contains(progress, reading) {
		t.Fatalf("the second build read the modules again:\n%s", progress)
	}
	if !bytes.Equal(second, first) {
		t.Fatal("the build from the module index differs from the one that read the modules")
	}

	// A damaged entry is found, reported and computed again.
	entries, err := filepath.Glob(filepath.Join(cache, "modindex", "[0-9a-f]*"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("index entries %v (%v), want one", entries, err)
	}
	data, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"b","c_dash"`), []byte(`"b","c_das"`), 1)
	if err := os.Chmod(entries[0], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entries[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	third, progress := buildModules(t, specFile, cache)
	if !strings.Contains(progress, "warning: module index: "+entries[0]+" is corrupt") || !strings.Contains(progress, reading) {
		t.Fatalf("a damaged index entry was not reported and read again:\n%s", progress)
	}
	if !bytes.Equal(third, first) {
		t.Fatal("the build after a damaged index entry differs")
	}
}

// TestProgressNamesNoTemporaryDirectoryRealMirror builds a UKI, whose EFI
// stub comes from keel's tools/efi-stub package, written out to a
// temporary directory for the build: the progress names the package, not
// that directory.
func TestProgressNamesNoTemporaryDirectoryRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	specFile := moduleSpec(t)
	var progress bytes.Buffer
	_, err := Run(context.Background(), Options{Specs: []string{specFile}, Formats: []string{"uki"}, Dir: filepath.Join(filepath.Dir(specFile), "out"), CacheDir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "amd64: efi-stub: resolving keel's tools/efi-stub package") {
		t.Errorf("the progress does not name the tool package:\n%s", &progress)
	}
	if strings.Contains(progress.String(), "keel-tools-") {
		t.Errorf("the progress names a temporary directory:\n%s", &progress)
	}
}
