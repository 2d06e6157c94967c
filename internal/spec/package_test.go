package spec

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fullPackage = `name = "sshd"

[[go]]
main = "./cmd/keel-sshd"
dest = "/usr/bin/keel-sshd"
ldflags = "-s -w"
tags = ["netgo"]

[debian]
packages = ["openssh-server", "linux-image-{arch}"]
exclude = ["systemd"]
paths = ["/usr/sbin", "/etc/ssh"]
paths-exclude = ["/usr/share/doc/*"]

[[file]]
path = "/etc/ssh/sshd_config"
source = "sshd_config"

[config]
command = ["/usr/sbin/sshd", "-D", "-e"]
capabilities = ["CAP_NET_BIND_SERVICE", "CAP_SETUID"]
net = "host"

[build]
from = "base"
output = ["/out"]
network = true

[[build.step]]
run = "make"
env = ["CC=gcc"]
cwd = "/src"
cache = ["/root/.cache"]

[[build.step]]
copy = "src"
to = "/src"
from = "./pkg/other"
`

func TestLoadPackage(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "package.toml", fullPackage)
	pk, err := LoadPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pk.Dir != dir || pk.Files[0].Dir != dir || pk.Files[0].SourcePath() != filepath.Join(dir, "sshd_config") {
		t.Errorf("dirs: %q %q", pk.Dir, pk.Files[0].Dir)
	}
	if pk.Debian.Suite != "bookworm" {
		t.Errorf("suite default: %q", pk.Debian.Suite)
	}
	if !reflect.DeepEqual(pk.Config.Command, []string{"/usr/sbin/sshd", "-D", "-e"}) || *pk.Config.Net != "host" {
		t.Errorf("config: %+v", pk.Config)
	}
	if len(pk.Build.Steps) != 2 || pk.Build.Steps[1].FromPk != "./pkg/other" {
		t.Errorf("build: %+v", pk.Build)
	}
}

func TestLoadRepositoryPackages(t *testing.T) {
	for _, dir := range []string{"../../kernel/debian", "../../kernel/debian-cloud", "../../tools/efi-stub"} {
		if _, err := LoadPackage(dir); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}

func TestLoadPackageReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "package.toml", `name = "Bad"

[[go]]
main = ""
dest = "usr/bin/x"

[debian]
packages = []
suite = "bookworm"
pathz = ["/x"]

[[file]]
path = "/etc/x"

[config]
capabilities = ["CAP_NET_ADMN"]

[[build.step]]
run = "x"
copy = "y"
`)
	_, err := LoadPackage(dir)
	got := errorLines(t, err)
	want := []string{
		f + `:1:8: name: "Bad" is not a valid name (lower-case letters, digits and '-', starting with a letter or digit)`,
		f + `:4:8: go[usr/bin/x].main: required`,
		f + `:5:8: go[usr/bin/x].dest: "usr/bin/x" is not an absolute path`,
		f + `:8:1: debian.packages: required (at least one package)`,
		f + `:10:1: debian.pathz: unknown key; did you mean "paths"?`,
		f + `:12:3: file[/etc/x]: set exactly one of contents, source, symlink or directory (got none)`,
		f + `:16:17: config.capabilities: unknown capability "CAP_NET_ADMN"; did you mean "CAP_NET_ADMIN"?`,
		f + `:18:9: build.step[0]: set run or copy, not both`,
		f + `:18:9: build.step[0].to: required with copy`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadPackageMissing(t *testing.T) {
	_, err := LoadPackage(t.TempDir())
	if got := errorLines(t, err); len(got) != 1 || !strings.Contains(got[0], "package.toml: cannot read") {
		t.Fatalf("got %q", got)
	}
}

func TestLoadPackageBuildErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"[build]\nfrom = \"Not A Ref!\"\n\n[[build.step]]\nrun = \"x\"\n",
			`:4:8: build.from: "Not A Ref!": want "scratch", "base", a package directory (./dir, ../dir) or an image reference`},
		{"[[file]]\npath = \"/x\"\ncontents = \"\"\n\n[build]\nfrom = \"scratch\"\n\n[[build.step]]\nrun = \"x\"\n",
			`:8:8: build.from: "scratch": the package's [[go]], [debian] and [[file]] parts are the base of its build: set from = "base" or drop them`},
		{"[build]\nfrom = \"scratch\"\n",
			`:3:2: build: needs at least one [[build.step]]`},
		{"[build]\n\n[[build.step]]\ncopy = \"../secret\"\nto = \"/x\"\n",
			`:6:8: build.step[0].copy: "../secret": a path inside the package directory, relative to it`},
		{"[build]\n\n[[build.step]]\ncopy = \"/x\"\nto = \"/x\"\nfrom = \"Bad Ref\"\n",
			`:8:8: build.step[0].from: "Bad Ref": want a package directory (./dir, ../dir) or an image reference`},
	} {
		dir := t.TempDir()
		f := write(t, dir, "package.toml", "name = \"p\"\n\n"+c.body)
		_, err := LoadPackage(dir)
		got := errorLines(t, err)
		if len(got) != 1 || got[0] != f+c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.body, got, f+c.want)
		}
	}
	for _, from := range []string{"scratch", "base", "../other", "./x", "docker.io/library/debian:bookworm", "registry.example.com:5000/a/b:1@sha256:" + strings.Repeat("a", 64)} {
		dir := t.TempDir()
		write(t, dir, "package.toml", "name = \"p\"\n\n[build]\nfrom = \""+from+"\"\n\n[[build.step]]\ncopy = \"/etc\"\nto = \"/etc\"\nfrom = \"../other\"\n")
		if _, err := LoadPackage(dir); err != nil {
			t.Errorf("from %q: %v", from, err)
		}
	}
}
