package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/spec"
)

const convertYAML = `kernel:
  image: linuxkit/kernel:6.6.13
  cmdline: "console=ttyS0"
  tar: none
init:
  - linuxkit/init:v1.2.0
  - linuxkit/runc:v1.1.12
services:
  - name: web
    image: example/web:1.0
    binds.add:
      - /var/log:/var/log:ro
    rootfsPropagation: shared
`

// convertArgs leaves out LinuxKit's init and runtime and maps the web
// image to a keel package of the directory dir.
func convertArgs(extra ...string) []string {
	return append([]string{"convert", "linuxkit", "--image-map", "linuxkit/init=./init", "--image-map", "linuxkit/runc=",
		"--image-map", "example/web=./pkg/web"}, extra...)
}

func writeWebPackage(t *testing.T, dir string) {
	t.Helper()
	pkg := filepath.Join(dir, "pkg", "web")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, pkg, "package.toml", "name = \"web\"\n\n[config]\ncommand = [\"/web\"]\nbinds = [\"/run/web:/run/web\"]\n")
}

func TestConvertUnsupportedKeyExitsTwoUnlessLenient(t *testing.T) {
	dir := t.TempDir()
	yml := writeFile(t, dir, "web.yml", convertYAML)
	t.Chdir(dir)
	writeWebPackage(t, dir)

	code, stdout, stderr := keel(t, convertArgs(yml)...)
	if code != 2 || stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	want := yml + ":13:24: services[web].rootfsPropagation: not supported: keel keeps every container's mounts rslave"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr:\n%s\nwant a line starting %q", stderr, want)
	}
	if !strings.HasSuffix(stderr, "\nkeel convert linuxkit: keel cannot express every key; no spec written (--lenient writes it without them)\n") {
		t.Errorf("stderr ends:\n%s", stderr)
	}

	code, stdout, stderr = keel(t, convertArgs("--lenient", yml)...)
	if code != 0 {
		t.Fatalf("--lenient: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("--lenient still reports what it leaves out; stderr:\n%s", stderr)
	}
	s, err := spec.Parse(filepath.Join(dir, "build.toml"), []byte(stdout))
	if err != nil {
		t.Fatalf("the spec written does not load: %v\n%s", err, stdout)
	}
	// binds.add went onto the binds of the package's [config].
	if len(s.Services) != 1 || strings.Join(s.Services[0].Binds, " ") != "/run/web:/run/web /var/log:/var/log:ro" {
		t.Errorf("services: %+v", s.Services)
	}
	if got := s.Init; len(got) != 1 || got[0].Ref != "./init" {
		t.Errorf("init: %v", got)
	}
}

func TestConvertInvalidFileExitsTwoEvenLenient(t *testing.T) {
	dir := t.TempDir()
	yml := writeFile(t, dir, "bad.yml", "services:\n  - name: x\n    image: alpine:3.19\n    frobnicate: true\n")
	code, stdout, stderr := keel(t, "convert", "linuxkit", "--lenient", yml)
	if code != 2 || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if !strings.Contains(stderr, yml+":4:5: services[x].frobnicate: unknown key of an image entry\n") ||
		!strings.Contains(stderr, "not a valid LinuxKit configuration; no spec written") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// -o writes the file, and relative package paths are relative to it.
func TestConvertOutputFile(t *testing.T) {
	dir := t.TempDir()
	yml := writeFile(t, dir, "web.yml", strings.Replace(convertYAML, "    rootfsPropagation: shared\n", "", 1))
	out := filepath.Join(dir, "spec", "build.toml")
	writeWebPackage(t, filepath.Dir(out))
	t.Chdir(t.TempDir()) // the current directory has no ./pkg/web

	code, stdout, stderr := keel(t, convertArgs("--format", "gcp,iso-efi-initrd", "-o", out, yml)...)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q: %s", code, stdout, stderr)
	}
	s, err := spec.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Output.Formats, ","); got != "gce,iso-efi" {
		t.Errorf("formats %s, want LinuxKit's names resolved: gce,iso-efi", got)
	}
	if strings.Join(s.Services[0].Binds, " ") != "/run/web:/run/web /var/log:/var/log:ro" {
		t.Errorf("binds %v: the package next to -o was not read", s.Services[0].Binds)
	}
}

func TestConvertBadFlagsAreUsageErrors(t *testing.T) {
	yml := writeFile(t, t.TempDir(), "a.yml", "kernel:\n  image: linuxkit/kernel:6.6.13\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"convert", "linuxkit", "--image-map", "linuxkit/sshd", yml}, `--image-map "linuxkit/sshd": want FROM=TO`},
		{[]string{"convert", "linuxkit", "--format", "kernel+squashfs", yml}, `output format "kernel+squashfs" (LinuxKit's) has no keel equivalent: use a disk format`},
		{[]string{"convert", "linuxkit"}, "requires at least 1 arg"},
		{[]string{"convert"}, "want a subcommand: linuxkit"}, // and the help, on stdout
	} {
		code, stdout, stderr := keel(t, c.args...)
		if code != 2 || stdout != "" && len(c.args) > 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// keel build's --format takes LinuxKit's names too, or says which to use.
func TestConvertFormatNamesInBuild(t *testing.T) {
	f := writeFile(t, t.TempDir(), "a.toml", "[kernel]\nimage = \"./kernel\"\n")
	code, _, stderr := keel(t, "--cache", t.TempDir(), "build", "--format", "rpi3", f)
	if code != 2 || !strings.Contains(stderr, `--format: output format "rpi3" (LinuxKit's) has no keel equivalent: use "rpi"`) {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	got, err := resolveFormats("--format", []string{"gcp", "raw-efi", "iso-efi-initrd"})
	if err != nil || strings.Join(got, ",") != "gce,raw-efi,iso-efi" {
		t.Errorf("got %v, %v", got, err)
	}
}
