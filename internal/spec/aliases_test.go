package spec

import (
	"slices"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/format"
)

// linuxkitFormats are the names `linuxkit build --format` accepts
// (LinuxKit's outFuns and its streamable outputs).
var linuxkitFormats = []string{
	"kernel+initrd", "tar-kernel-initrd", "iso-bios", "iso-efi", "iso-efi-initrd", "raw-bios",
	"raw-efi", "kernel+squashfs", "kernel+erofs", "kernel+iso", "aws", "gcp", "qcow2-efi",
	"qcow2-bios", "vhd", "dynamic-vhd", "vmdk", "rpi3", "docker", "tar",
}

func isFormat(name string) bool {
	_, ok := format.Lookup(name)
	return ok
}

func TestResolveFormatKnowsEveryLinuxKitFormat(t *testing.T) {
	for _, name := range linuxkitFormats {
		got, err := ResolveFormat(name)
		switch {
		case err == nil:
			if !isFormat(got) {
				t.Errorf("%s: resolved to %q, not a keel format", name, got)
			}
		case strings.Contains(err.Error(), "unknown"):
			t.Errorf("%s: %v", name, err)
		case !strings.Contains(err.Error(), ": use "):
			t.Errorf("%s: refusal %q does not say what to use", name, err)
		}
	}
}

func TestResolveFormat(t *testing.T) {
	for _, f := range format.Names() {
		if got, err := ResolveFormat(f); err != nil || got != f {
			t.Errorf("%s: got %q, %v", f, got, err)
		}
	}
	for name, want := range map[string]string{"gcp": "gce", "iso-efi-initrd": "iso-efi"} {
		if got, err := ResolveFormat(name); err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, want)
		}
	}
	for name, want := range map[string]string{
		"kernel+squashfs":   `output format "kernel+squashfs" (LinuxKit's) has no keel equivalent: use a disk format such as "raw-efi" with [output] root = "squashfs"`,
		"tar-kernel-initrd": `use "kernel+initrd"`,
		"rpi3":              `use "rpi"`,
		"qcow2-ef":          `unknown output format "qcow2-ef"; did you mean "qcow2-efi"?`,
		"rpi-3":             `unknown output format "rpi-3"; did you mean "rpi3"?`,
		"floppy":            `unknown output format "floppy" (want one of kernel+initrd, tar, `,
	} {
		_, err := ResolveFormat(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, want)
		}
	}
}

func TestSpecFormatsTakeLinuxKitNames(t *testing.T) {
	const kernel = "[kernel]\nimage = \"./k\"\n"
	s, err := Parse("t.toml", []byte(kernel+"[output]\nformats = [\"gcp\", \"iso-efi-initrd\", \"raw-efi\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gce", "iso-efi", "raw-efi"}; !slices.Equal(s.Output.Formats, want) {
		t.Errorf("formats %q, want %q", s.Output.Formats, want)
	}
	_, err = Parse("t.toml", []byte(kernel+"[output]\nformats = [\"rpi3\"]\n"))
	if want := `t.toml:4:12: output.formats: output format "rpi3" (LinuxKit's) has no keel equivalent: use "rpi"`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want it to start with %q", err, want)
	}
}
