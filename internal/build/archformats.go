package build

import (
	"fmt"
	"strings"

	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/spec"
)

// checkFormats refuses, before anything is built, what the format table
// says cannot be: a format keel does not know (Options.Formats skip the
// spec's validation), one asked for an architecture that cannot boot it,
// and a root on disk with a format that has no disk to carry it.
func checkFormats(s *spec.Spec) error {
	var noDisk []string
	for _, name := range s.Output.Formats {
		f, ok := format.Lookup(name)
		if !ok {
			return fmt.Errorf("unknown output format %q (one of %s)", name, strings.Join(format.Names(), ", "))
		}
		for _, a := range s.Arch {
			if !f.Boots(a) {
				return fmt.Errorf("output format %q: %s, not %s (%s)", f.Name, f.ArchWhy, a, f.Instead)
			}
		}
		if !f.CarriesDiskRoot() {
			noDisk = append(noDisk, f.Name)
		}
	}
	if rootOnDisk(s) && len(noDisk) > 0 {
		var disks []string
		for _, f := range format.All() {
			if f.From.Disk() {
				disks = append(disks, f.Name)
			}
		}
		return fmt.Errorf("output root %q is a disk partition, which %s cannot carry: build a disk format (%s), or set [output] root = \"initrd\"",
			s.Output.Root, strings.Join(noDisk, ", "), strings.Join(disks, ", "))
	}
	return nil
}
