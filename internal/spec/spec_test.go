package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// write puts a spec file in dir and returns its path.
func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func errorLines(t *testing.T, err error) []string {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("want spec.Errors, got %T: %v", err, err)
	}
	return strings.Split(es.Error(), "\n")
}

const kernel = "[kernel]\nimage = \"./kernel\"\n"

func TestLoadReportsEveryErrorWithPosition(t *testing.T) {
	f := write(t, t.TempDir(), "build.toml", `name = "host"

[kernel]
image = "./kernel/debian-cloud"

[[service]]
name = "sshd"
image = "./pkg/sshd"
capabilites = ["CAP_NET_BIND_SERVICE"]

[[service]]
name = "ntpd"
image = "./pkg/ntpd"
capabilities = ["CAP_SYS_TMIE"]

[[service]]
name = "sshd"
image = "./pkg/sshd"
`)
	_, err := Load(f)
	got := errorLines(t, err)
	want := []string{
		f + `:9:1: service[sshd].capabilites: unknown key; did you mean "capabilities"?`,
		f + `:14:17: service[ntpd].capabilities: unknown capability "CAP_SYS_TMIE"; did you mean "CAP_SYS_TIME"?`,
		f + `:17:8: service[sshd].name: duplicate name "sshd" (first at line 7)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadReportsWrongTypes(t *testing.T) {
	f := write(t, t.TempDir(), "build.toml", `name = 3
arch = "amd64"
`+kernel+`
[[onboot]]
name = "x"
image = "./x"
readonly = "yes"
uid = -1
oom-score-adj = 1.5
`)
	_, err := Load(f)
	got := errorLines(t, err)
	want := []string{
		f + `:1:8: name: expected string, got integer`,
		f + `:2:8: arch: expected array, got string`,
		f + `:9:12: onboot[x].readonly: expected boolean, got string`,
		f + `:10:7: onboot[x].uid: integer out of range (0 to 4294967295)`,
		f + `:11:17: onboot[x].oom-score-adj: expected integer, got float`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadSyntaxError(t *testing.T) {
	f := write(t, t.TempDir(), "build.toml", "name = \"a\"\nname = \"b\"\n")
	got := errorLines(t, must(Load(f)))
	if len(got) != 1 || !strings.HasPrefix(got[0], f+":2:1: ") {
		t.Fatalf("got %q", got)
	}
}

func must(_ *Spec, err error) error { return err }

func TestLoadReferenceSpec(t *testing.T) {
	s, err := Load("../../build.toml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../..")
	if s.Name != "host" || s.Kernel.Image.Dir != abs || s.Services[0].Image.Dir != abs || s.Files[0].Dir != abs {
		t.Fatalf("dirs not set: %+v", s.Kernel.Image)
	}
	if s.Kernel.Image.Ref != "./kernel/debian-cloud" {
		t.Fatalf("local ref rewritten: %q", s.Kernel.Image.Ref)
	}
}

func TestLoadDefaults(t *testing.T) {
	f := write(t, t.TempDir(), "build.toml", kernel)
	s, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "keel" || !reflect.DeepEqual(s.Arch, []string{runtime.GOARCH}) || s.Output.Root != "initrd" ||
		!reflect.DeepEqual(s.Output.Formats, []string{"kernel+initrd"}) {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestLoadRequiresKernel(t *testing.T) {
	f := write(t, t.TempDir(), "build.toml", "name = \"x\"\n")
	got := errorLines(t, must(Load(f)))
	if len(got) != 1 || got[0] != f+": kernel.image: required: no file sets [kernel] image" {
		t.Fatalf("got %q", got)
	}
}

func TestMergeOverlays(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.toml", `name = "base"
arch = ["amd64"]
init = ["./init"]
`+kernel+`cmdline = "console=ttyS0"
modules = ["virtio_net"]

[[service]]
name = "sshd"
image = "./pkg/sshd"

[output]
formats = ["iso-efi"]
size = "1GiB"
`)
	b := write(t, dir, "variant/b.toml", `name = "prod"
arch = ["arm64", "amd64"]

[kernel]
cmdline = "quiet"
modules = ["overlay"]

[[service]]
name = "ntpd"
image = "./pkg/ntpd"

[[file]]
path = "/etc/motd"
source = "motd"

[output]
formats = ["qcow2-efi", "iso-efi"]
`)
	s, err := Load(a, b)
	if err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(dir, "variant")
	if s.Name != "prod" || s.Kernel.Cmdline != "quiet" || s.Kernel.Image.Ref != "./kernel" || s.Kernel.Image.Dir != dir {
		t.Errorf("scalars: %+v", s)
	}
	if !reflect.DeepEqual(s.Arch, []string{"amd64", "arm64"}) || !reflect.DeepEqual(s.Kernel.Modules, []string{"virtio_net", "overlay"}) ||
		!reflect.DeepEqual(s.Output.Formats, []string{"iso-efi", "qcow2-efi"}) {
		t.Errorf("lists: %v %v %v", s.Arch, s.Kernel.Modules, s.Output.Formats)
	}
	if len(s.Services) != 2 || s.Services[0].Image.Dir != dir || s.Services[1].Image.Dir != vdir || s.Files[0].SourcePath() != filepath.Join(vdir, "motd") {
		t.Errorf("entries: %+v", s.Services)
	}
	if s.Output.Size.String() != "1GiB" {
		t.Errorf("unset scalar overrode: %q", s.Output.Size)
	}
}

// Duplicates across files are found whatever the files are called,
// two files of the same base name included.
func TestMergeDuplicateAcrossFiles(t *testing.T) {
	for _, names := range [][2]string{{"a.toml", "b.toml"}, {"x/build.toml", "y/build.toml"}} {
		dir := t.TempDir()
		a := write(t, dir, names[0], kernel+"\n[[service]]\nname = \"sshd\"\nimage = \"./a\"\n")
		b := write(t, dir, names[1], "[[onboot]]\nname = \"sshd\"\nimage = \"./b\"\n\n[[service]]\nname = \"sshd\"\nimage = \"./b\"\n")
		got := errorLines(t, must(Load(a, b)))
		want := []string{b + `:6:8: service[sshd].name: duplicate service "sshd", already defined at ` + a + `:5:8`}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	}
}

func TestErrorsFromSeveralFilesInOneRun(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.toml", kernel+"bogus = 1\n")
	b := write(t, dir, "b.toml", "arch = [\"riscv64\"]\n")
	got := errorLines(t, must(Load(a, b)))
	if len(got) != 2 || !strings.HasPrefix(got[0], a+":3:1: kernel.bogus") || !strings.HasPrefix(got[1], b+":1:9: arch") {
		t.Fatalf("got %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	got := errorLines(t, must(Load(filepath.Join(t.TempDir(), "nope.toml"))))
	if len(got) != 1 || !strings.Contains(got[0], "cannot read") {
		t.Fatalf("got %q", got)
	}
}

// A spec file given twice, under any name, would be merged with itself:
// every container in it twice, and no duplicate reported.
func TestLoadSameFileTwice(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.toml", kernel+"\n[[onboot]]\nname = \"setup\"\nimage = \"./a\"\n")
	b := write(t, dir, "b.toml", "[[service]]\nname = \"sshd\"\nimage = \"./b\"\n")
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink("a.toml", link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.toml")
	if err := os.Link(a, hard); err != nil {
		t.Fatal(err)
	}
	for _, again := range []string{a, filepath.Join(dir, ".", "x", "..", "a.toml"), link, hard} {
		got := errorLines(t, must(Load(a, b, again)))
		want := []string{again + ": the same file as spec argument 1 (" + a + "); give each spec file once"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Load(a, b, %s):\ngot  %q\nwant %q", again, got, want)
		}
	}
}
