package build

import (
	"slices"
	"strings"
)

// cmdlineConsole is the kernel's console parameter; keel's own
// parameters, which init reads, are layout.Cmdline*.
const cmdlineConsole = "console"

// kernelCmdline is an image's kernel command line as its parameters. It
// is made once, when the system is assembled, and never edited: each boot
// loader renders it (String for the UKI's .cmdline, ISOLINUX's APPEND and
// the kernel+initrd -cmdline file; grub; rpi).
type kernelCmdline struct {
	// consoles are the architecture's serial consoles, which keel puts
	// first when the spec names no console; a board with consoles of
	// its own (rpi) has them replaced.
	consoles []string
	// params are the spec's parameters, then keel's root parameters.
	params []string
}

// newKernelCmdline is the command line of an image: the spec's
// parameters, after the architecture's serial consoles when the spec
// names none, and then root (the parameters of a root on disk).
func newKernelCmdline(specCmdline, arch string, root ...string) kernelCmdline {
	c := kernelCmdline{params: slices.Concat(splitCmdline(specCmdline), root)}
	if !slices.ContainsFunc(c.params, isConsole) {
		c.consoles = []string{cmdlineConsole + "=tty0", cmdlineConsole + "=ttyS0"}
		if arch == "arm64" {
			c.consoles = []string{cmdlineConsole + "=ttyAMA0"}
		}
	}
	return c
}

func isConsole(param string) bool {
	key, _, _ := strings.Cut(param, "=")
	return key == cmdlineConsole
}

// words are the parameters in order.
func (c kernelCmdline) words() []string { return slices.Concat(c.consoles, c.params) }

// String is the command line as the kernel reads it, parameters separated
// by one space.
func (c kernelCmdline) String() string { return strings.Join(c.words(), " ") }

// grub is the command line for GRUB's parser: each parameter in single
// quotes, so GRUB expands and splits nothing.
func (c kernelCmdline) grub() string {
	words := c.words()
	for i, w := range words {
		words[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(words, " ")
}

// withConsoles is the command line for a board with serial consoles of
// its own: they replace the consoles keel added, last (the last console=
// becomes /dev/console). A spec that names its consoles keeps them, and
// gets no others.
func (c kernelCmdline) withConsoles(consoles []string) string {
	if len(c.consoles) == 0 {
		return c.String()
	}
	return strings.Join(slices.Concat(c.params, consoles), " ")
}

// splitCmdline splits a command line into parameters as the kernel does:
// at spaces, tabs and newlines outside double quotes, which stay.
func splitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ' ' || r == '\t' || r == '\n') && !quoted:
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}
