package build

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/rpi"
)

func TestKernelCmdline(t *testing.T) {
	for _, c := range []struct {
		spec, arch string
		root       []string
		want       string
	}{
		{"panic=-1 keel.console_log=1", "amd64", nil, "console=tty0 console=ttyS0 panic=-1 keel.console_log=1"},
		{"panic=10", "arm64", nil, "console=ttyAMA0 panic=10"},
		{"", "arm64", nil, "console=ttyAMA0"},
		{"console=ttyS1 panic=-1", "amd64", nil, "console=ttyS1 panic=-1"},
		// netconsole= names no console of the kernel's own.
		{"netconsole=@/eth0,@10.0.0.1/", "amd64", nil, "console=tty0 console=ttyS0 netconsole=@/eth0,@10.0.0.1/"},
		{"  quiet \t dyndbg=\"file x.c +p\"\n", "amd64", []string{"keel.root=PARTLABEL=r", "keel.rootfstype=erofs"},
			`console=tty0 console=ttyS0 quiet dyndbg="file x.c +p" keel.root=PARTLABEL=r keel.rootfstype=erofs`},
	} {
		if got := newKernelCmdline(c.spec, c.arch, c.root...).String(); got != c.want {
			t.Errorf("%q for %s: %q, want %q", c.spec, c.arch, got, c.want)
		}
	}
}

func TestGrubQuotesEachParameter(t *testing.T) {
	for in, want := range map[string]string{
		"console=ttyS0 panic=-1":           "'console=ttyS0' 'panic=-1'",
		`  a  dyndbg="file x.c +p" $root `: `'a' 'dyndbg="file x.c +p"' '$root'`,
		"it's":                             `'it'\''s'`,
		"":                                 "",
	} {
		if got := (kernelCmdline{params: splitCmdline(in)}).grub(); got != want {
			t.Errorf("grub(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestRPiConsoles replaces only the consoles keel added: a console the
// spec names is kept, and then the Pi's are not added.
func TestRPiConsoles(t *testing.T) {
	pi := strings.Join(rpi.Consoles, " ")
	for in, want := range map[string]string{
		"panic=10":                          "panic=10 " + pi,
		"":                                  pi,
		"console=ttyAMA0 panic=-1":          "console=ttyAMA0 panic=-1",
		"quiet console=tty1 foo=1":          "quiet console=tty1 foo=1",
		"keel.console_log=1 panic=-1":       "keel.console_log=1 panic=-1 " + pi,
		"console=ttyS1,115200 console=tty1": "console=ttyS1,115200 console=tty1",
	} {
		if got := newKernelCmdline(in, "arm64").withConsoles(rpi.Consoles); got != want {
			t.Errorf("%q: cmdline.txt %q, want %q", in, got, want)
		}
	}
}

// TestRPiImageKeepsTheSpecsConsole builds an rpi image whose spec names
// a console and reads cmdline.txt back from its boot partition.
func TestRPiImageKeepsTheSpecsConsole(t *testing.T) {
	specFile := formatSpec(t)
	extra := filepath.Join(filepath.Dir(specFile), "console.toml")
	if err := os.WriteFile(extra, []byte("[kernel]\ncmdline = \"console=tty1 panic=10\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Run(context.Background(), Options{Specs: []string{specFile, extra}, Dir: dir, Arch: []string{"arm64"}, Formats: []string{"rpi"}, CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "fmt-arm64-rpi.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mbr [512]byte
	if _, err := io.ReadFull(f, mbr[:]); err != nil {
		t.Fatal(err)
	}
	start := int64(binary.LittleEndian.Uint32(mbr[446+8:])) * 512
	size := int64(binary.LittleEndian.Uint32(mbr[446+12:])) * 512
	fsys, err := fat.Open(io.NewSectionReader(f, start, size), size)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fsys.ReadFile(rpi.CmdlineName)
	if err != nil {
		t.Fatal(err)
	}
	if want := "console=tty1 panic=10\n"; string(got) != want {
		t.Errorf("cmdline.txt %q, want %q", got, want)
	}
	if slices.ContainsFunc(rpi.Consoles, func(c string) bool { return strings.Contains(string(got), c) }) {
		t.Error("the Pi's consoles were added to a spec that names its own")
	}
}
