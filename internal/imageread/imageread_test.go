package imageread

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/imageread/imagetest"
)

var fixtureFiles = map[string]string{
	"init":                     "#!init\n",
	"etc/keel/build.toml":      "name = \"host\"\n",
	"etc/keel/provenance.json": "{\"spec_sha256\": \"aa\"}\n",
	"etc/keel/empty":           "",
	"usr/bin/big":              strings.Repeat("0123456789abcdef", 70000), // > 1 MiB, spans zstd blocks
	"usr/bin/same-as-toml":     "name = \"host\"\n",                       // a hard link in the cpio
}

func outputs(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	root, err := imagetest.Tree(filepath.Join(dir, "store"), fixtureFiles)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := imagetest.Outputs(dir, "host", root)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func TestReadEveryFormat(t *testing.T) {
	outs := outputs(t)
	for _, name := range []string{format.KernelInitrd, format.Tar, format.UKI, format.ISOEFI, format.RawEFI, format.Qcow2EFI} {
		t.Run(name, func(t *testing.T) {
			im, err := Open(outs[name])
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if im.Format != name {
				t.Errorf("format %q, want %q (layers %v)", im.Format, name, im.Layers)
			}
			names := []string{"/etc/keel/build.toml", "etc/keel/provenance.json", "etc/keel/empty", "usr/bin/big", "usr/bin/same-as-toml", "etc/keel/nope"}
			files, _, err := im.ReadFiles(names...)
			if err != nil {
				t.Fatalf("ReadFiles (layers %v): %v", im.Layers, err)
			}
			for _, n := range names[:5] {
				n = strings.TrimPrefix(n, "/")
				got, ok := files[n]
				if !ok {
					t.Errorf("%s missing", n)
				} else if string(got) != fixtureFiles[n] {
					t.Errorf("%s: %d bytes, want %d", n, len(got), len(fixtureFiles[n]))
				}
			}
			if _, ok := files["etc/keel/nope"]; ok {
				t.Error("a file that does not exist was found")
			}
			var missing *Missing
			if _, err := im.ReadFile("etc/keel/nope"); !errors.As(err, &missing) {
				t.Errorf("ReadFile of a missing file: %v", err)
			}
		})
	}
}

func TestKernelPathReadsInitrd(t *testing.T) {
	outs := outputs(t)
	kernel := strings.TrimSuffix(outs[format.KernelInitrd], "-initrd.img") + "-kernel"
	im, err := Open(kernel)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if data, err := im.ReadFile("etc/keel/build.toml"); err != nil || string(data) != fixtureFiles["etc/keel/build.toml"] {
		t.Fatalf("%q, %v", data, err)
	}
}

func TestNotAnImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, []byte("hello, world"), 0o644)
	if _, err := Open(p); !errors.Is(err, ErrNotImage) {
		t.Fatalf("got %v, want ErrNotImage", err)
	}
}

// TestFAT32ESP covers ESPs of 64 MiB and more, which keel formats FAT32.
func TestFAT32ESP(t *testing.T) {
	dir := t.TempDir()
	root, err := imagetest.Tree(filepath.Join(dir, "store"), fixtureFiles)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := imagetest.Outputs(dir, "host", root)
	if err != nil {
		t.Fatal(err)
	}
	ukiData, err := os.ReadFile(outs[format.UKI])
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "big.raw")
	if err := imagetest.EFIDisk(p, ukiData, 80<<20); err != nil {
		t.Fatal(err)
	}
	im, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	var bs [512]byte
	im.f.ReadAt(bs[:], 1<<20)
	if !bytes.Contains(bs[:], []byte("FAT32")) {
		t.Fatalf("ESP is not FAT32")
	}
	if data, err := im.ReadFile("etc/keel/build.toml"); err != nil || string(data) != fixtureFiles["etc/keel/build.toml"] {
		t.Fatalf("%q, %v", data, err)
	}
}
