package build

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/imageread"
	"github.com/keelos/keel/internal/imageread/imagetest"
	"github.com/keelos/keel/internal/rpi"
	"github.com/keelos/keel/internal/spec"
	"github.com/keelos/keel/internal/testenv"
)

// TestEveryFormatHasAWriter checks that the build's writers and the
// format table name the same formats.
func TestEveryFormatHasAWriter(t *testing.T) {
	var names []string
	for name := range formatWriters() {
		names = append(names, name)
	}
	sort.Strings(names)
	want := format.Names()
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("writers for %v, formats %v", names, want)
	}
}

// TestFormatTableRules enumerates the format table and checks that the
// spec's validation, the build's checks of architectures and roots, and
// the writers' file names follow it.
func TestFormatTableRules(t *testing.T) {
	const head = "[kernel]\nimage = \"./kernel\"\n\n[output]\n"
	for _, f := range format.All() {
		if _, err := spec.Parse("build.toml", []byte(head+"formats = [\""+f.Name+"\"]\n")); err != nil {
			t.Errorf("%s: the spec refuses it: %v", f.Name, err)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			s := &spec.Spec{Arch: []string{arch}, Output: spec.Output{Formats: []string{f.Name}, Root: "initrd"}}
			if err := checkFormats(s); (err == nil) != f.Boots(arch) {
				t.Errorf("%s for %s: boots %v, but checkFormats says %v", f.Name, arch, f.Boots(arch), err)
			} else if err != nil && !strings.Contains(err.Error(), f.Instead) {
				t.Errorf("%s for %s: %v does not say what to use instead", f.Name, arch, err)
			}
			for _, root := range []string{"squashfs", "erofs"} {
				s.Output.Root = root
				err := checkFormats(s)
				if f.Boots(arch) && (err == nil) != f.CarriesDiskRoot() {
					t.Errorf("%s with a %s root: carries it %v, but checkFormats says %v", f.Name, root, f.CarriesDiskRoot(), err)
				}
			}
		}
	}
	for _, bad := range []string{"qcow", "raw-efi ", "RAW", "sbom", ""} {
		if _, err := spec.Parse("build.toml", []byte(head+"formats = [\""+bad+"\"]\n")); err == nil || !strings.Contains(err.Error(), "unknown output format") {
			t.Errorf("%q: the spec accepts it (err = %v)", bad, err)
		}
		s := &spec.Spec{Arch: []string{"amd64"}, Output: spec.Output{Formats: []string{bad}}}
		if err := checkFormats(s); err == nil {
			t.Errorf("%q: the build accepts it", bad)
		}
	}
}

// TestAddingAFormat adds a (test-only) format: an entry in the table and
// its writer are all the build needs to write it, named from the entry,
// made from the intermediate the entry names.
func TestAddingAFormat(t *testing.T) {
	tgz := format.Descriptor{Name: "tar-gz", Suffixes: []string{".tar.gz"}, From: format.Tree, Summary: "the root tree as a gzipped tar"}
	table := append(format.All(), tgz)
	writers := formatWriters()
	writers[tgz.Name] = func(ctx context.Context, o *archOutputs, f format.Descriptor) error {
		return o.write(ctx, f, 0, func(w *os.File) error {
			zw := gzip.NewWriter(ctxio.Writer(ctx, w))
			if err := o.sys.root.WriteTar(zw, o.b.epoch); err != nil {
				return err
			}
			return zw.Close()
		})
	}

	dir := t.TempDir()
	root, err := imagetest.Tree(filepath.Join(dir, "store"), map[string]string{"init": "#!init\n", "etc/hostname": "x\n"})
	if err != nil {
		t.Fatal(err)
	}
	s := &spec.Spec{Name: "host", Arch: []string{"amd64"}, Output: spec.Output{Formats: []string{"tar-gz", "tar"}}}
	b := &builder{spec: s, opts: Options{Dir: "/out"}, epoch: epoch.Default(), stage: t.TempDir()}
	sys := &system{arch: "amd64", root: root, sbom: []byte("{}")}
	outs, err := b.writeFormats(context.Background(), sys, table, writers)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, o.Format+" "+o.Path)
	}
	want := []string{"sbom /out/host-amd64.spdx.json", "tar /out/host-amd64.tar", "tar-gz /out/host-amd64.tar.gz"}
	if !slices.Equal(got, want) {
		t.Errorf("outputs %q, want %q", got, want)
	}
	plain, err := os.ReadFile(filepath.Join(b.stage, "host-amd64.tar"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(b.stage, "host-amd64.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, err := io.ReadAll(zr); err != nil || !bytes.Equal(unzipped, plain) {
		t.Errorf("tar-gz is not the tar gzipped (err %v)", err)
	}
}

// imageFor is an image of one layer for arch.
func imageFor(t *testing.T, arch string, files map[string]string) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layerOf(t, files))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// formatSpec writes a spec whose kernel image (for amd64 and arm64) holds
// a stand-in kernel and the Pi device trees, and the Pi firmware for the
// rpi format; it returns the spec's path.
func formatSpec(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	kernel := map[string]string{"kernel": "not really a kernel", "lib/modules/6.1.0-test/modules.builtin": ""}
	for _, dtb := range rpi.RequiredDTBs {
		kernel["usr/lib/linux-image-6.1.0-test/broadcom/"+dtb] = "dtb"
	}
	lp, err := layout.Write(filepath.Join(dir, "kernel"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if err := lp.AppendImage(imageFor(t, arch, kernel)); err != nil {
			t.Fatal(err)
		}
	}
	fw := filepath.Join(dir, "firmware")
	if err := os.Mkdir(fw, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range rpi.RequiredFirmware {
		if err := os.WriteFile(filepath.Join(fw, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(RPiFirmwareEnv, fw)
	p := filepath.Join(dir, "build.toml")
	doc := `name = "fmt"

[kernel]
image = "./kernel"

[[file]]
path = "/init"
contents = "#!init\n"
mode = "0755"
`
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkInspectNames builds formats for arch and checks each output
// against the table: its file is NAME-ARCH and one of its format's
// suffixes, each format writes all its files, and `keel inspect` (whose
// format name is imageread's) reports the format that wrote it.
func checkInspectNames(t *testing.T, specFile, cache, arch string, formats []string) {
	t.Helper()
	dir := t.TempDir()
	res, err := Run(context.Background(), Options{Specs: []string{specFile}, Dir: dir, Arch: []string{arch}, Formats: formats, CacheDir: cache})
	if err != nil {
		t.Fatalf("%s: %v", arch, err)
	}
	files := map[string][]string{}
	for _, o := range res.Outputs {
		if o.Format == "sbom" {
			continue
		}
		f, ok := format.Lookup(o.Format)
		if !ok {
			t.Errorf("%s: output %s of unknown format %q", arch, o.Path, o.Format)
			continue
		}
		suffix, ok := strings.CutPrefix(filepath.Base(o.Path), "fmt-"+arch)
		if !ok || !slices.Contains(f.Suffixes, suffix) {
			t.Errorf("%s: %s is not fmt-%s and one of %q", f.Name, filepath.Base(o.Path), arch, f.Suffixes)
		}
		files[f.Name] = append(files[f.Name], suffix)
		im, err := imageread.Open(o.Path)
		if err != nil {
			t.Errorf("%s: inspect %s: %v", f.Name, filepath.Base(o.Path), err)
			continue
		}
		if im.Format != f.Name {
			t.Errorf("%s: inspect says %s is %s (layers %v)", f.Name, filepath.Base(o.Path), im.Format, im.Layers)
		}
		im.Close()
	}
	for _, name := range formats {
		f, _ := format.Lookup(name)
		if !slices.Equal(files[name], f.Suffixes) {
			t.Errorf("%s for %s: wrote %q, want %q", name, arch, files[name], f.Suffixes)
		}
	}
}

// TestFormatsInspectAsThemselves builds the formats that need no boot
// loader from Debian (kernel+initrd, tar, rpi) from a stand-in kernel.
func TestFormatsInspectAsThemselves(t *testing.T) {
	specFile := formatSpec(t)
	cache := t.TempDir()
	checkInspectNames(t, specFile, cache, "amd64", []string{format.KernelInitrd, format.Tar})
	checkInspectNames(t, specFile, cache, "arm64", []string{format.KernelInitrd, format.RPi})
}

// TestEveryFormatInspectsAsItselfRealMirror builds every format of the
// table, for each architecture that boots it, from a stand-in kernel
// (the EFI stub, ISOLINUX and GRUB come from the Debian mirror, through
// the shared cache).
func TestEveryFormatInspectsAsItselfRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	specFile := formatSpec(t)
	for _, arch := range spec.Archs {
		var formats []string
		for _, f := range format.All() {
			if f.Boots(arch) {
				formats = append(formats, f.Name)
			}
		}
		checkInspectNames(t, specFile, "", arch, formats)
	}
}
