package spec

import (
	"fmt"
	"slices"
	"strings"
)

// A FormatAlias is an output format name of another image builder
// (LinuxKit's `linuxkit build --format`): either another name for one of
// keel's Formats, or a name keel refuses, saying what to use instead.
type FormatAlias struct {
	Name   string // the name as LinuxKit users type it
	Format string // the keel format it stands for; "" when refused
	Use    string // when refused: what to use instead, and why
}

// formatAliases are LinuxKit's format names that are not also keel's.
// LinuxKit's kernel+initrd, tar, iso-bios, iso-efi, raw-bios, raw-efi,
// qcow2-efi, qcow2-bios, vhd, dynamic-vhd, vmdk and aws are keel formats
// of the same name and need no entry.
var formatAliases = []FormatAlias{
	{Name: "gcp", Format: "gce"},
	// LinuxKit's iso-efi-initrd boots a kernel and an initrd from an EFI
	// ISO: keel's iso-efi is exactly that (both inside a UKI).
	{Name: "iso-efi-initrd", Format: "iso-efi"},
	{Name: "tar-kernel-initrd", Use: `"kernel+initrd" (the kernel, initramfs and command line as three files, not in a tar)`},
	{Name: "kernel+squashfs", Use: `a disk format such as "raw-efi" with [output] root = "squashfs" (keel mounts a squashfs root only from a disk partition)`},
	{Name: "kernel+erofs", Use: `a disk format such as "raw-efi" with [output] root = "erofs" (keel mounts an erofs root only from a disk partition)`},
	{Name: "kernel+iso", Use: `"iso-efi", "iso-bios" or "iso" (keel's ISOs carry the kernel and boot by themselves)`},
	{Name: "rpi3", Use: `"rpi" (a Raspberry Pi 4 and 5 SD card image; the Pi 3 is not a keel target)`},
	{Name: "docker", Use: `"tar" and docker import (keel writes no container image of the system)`},
}

// FormatAliases returns the format names ResolveFormat knows besides
// Formats, accepted or refused.
func FormatAliases() []FormatAlias { return slices.Clone(formatAliases) }

// isFormatAlias reports whether name is one of FormatAliases.
func isFormatAlias(name string) bool {
	return slices.ContainsFunc(formatAliases, func(a FormatAlias) bool { return a.Name == name })
}

// ResolveFormat returns the keel format a format name stands for: the
// name itself for one of Formats, the keel format for an accepted alias.
// A refused alias or an unknown name is an error saying what to use.
func ResolveFormat(name string) (string, error) {
	if slices.Contains(Formats, name) {
		return name, nil
	}
	i := slices.IndexFunc(formatAliases, func(a FormatAlias) bool { return a.Name == name })
	switch {
	case i < 0:
		names := slices.Clone(Formats)
		for _, a := range formatAliases {
			names = append(names, a.Name)
		}
		if s := suggest(name, names); s != "" {
			return "", fmt.Errorf("unknown output format %q; did you mean %q?", name, s)
		}
		return "", fmt.Errorf("unknown output format %q (want one of %s)", name, strings.Join(Formats, ", "))
	case formatAliases[i].Format == "":
		return "", fmt.Errorf("output format %q (LinuxKit's) has no keel equivalent: use %s", name, formatAliases[i].Use)
	}
	return formatAliases[i].Format, nil
}
