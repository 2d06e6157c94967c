package build

import (
	"fmt"
	"slices"

	"github.com/keelos/keel/internal/spec"
)

// archOnly are the formats that boot on one architecture only: BIOS boot
// is x86's, and the Pi's firmware starts arm64 kernels.
var archOnly = []struct {
	format, arch, why, instead string
}{
	{"iso-bios", "amd64", "BIOS boot is x86 only", "use iso-efi, or iso"},
	{"raw-bios", "amd64", "BIOS boot is x86 only", "use raw-efi, or raw"},
	{"qcow2-bios", "amd64", "BIOS boot is x86 only", "use qcow2-efi"},
	{"rpi", "arm64", "Raspberry Pi 4/5 images are arm64 only", "use --arch arm64"},
}

// checkArchFormats refuses, before anything is built, a format asked for
// an architecture that cannot boot it.
func checkArchFormats(s *spec.Spec) error {
	for _, o := range archOnly {
		if !slices.Contains(s.Output.Formats, o.format) {
			continue
		}
		for _, a := range s.Arch {
			if a != o.arch {
				return fmt.Errorf("output format %q: %s, not %s (%s)", o.format, o.why, a, o.instead)
			}
		}
	}
	return nil
}
