// Package pcr predicts the TPM PCR value systemd-stub leaves when it
// boots a UKI, as systemd-measure computes it, so a fleet can seal
// secrets to (or attest against) an image before it ever boots.
//
// systemd-stub 252 (Debian bookworm's systemd-boot-efi, the stub keel
// builds UKIs from) measures into PCR 11, starting from zero, for each
// of the sections .linux, .osrel, .cmdline, .initrd, .splash, .dtb and
// .pcrpkey that the image has, in that order (not the file's): first the
// section's name with its terminating NUL, then its contents (VirtualSize
// bytes, as loaded). Each measurement extends every active bank with the
// digest of the measured bytes. A later stub (253+) measures .uname and
// .sbat too; a UKI carrying those would predict differently under it.
package pcr

import (
	"crypto"
	_ "crypto/sha1" // the banks a TPM may have
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
	"strings"

	"github.com/keelos/keel/internal/pecoff"
)

// KernelBoot is the PCR systemd-stub measures the UKI's sections into.
const KernelBoot = 11

// measuredSections are systemd 252's UKI sections in measurement order
// (its unified_sections table, .pcrsig left out: it holds the expected
// values, so it cannot be an input).
var measuredSections = []string{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"}

// Event is one extension of the PCR.
type Event struct {
	Section string // the section the event is about
	Name    bool   // whether it measured the name (else the contents)
	Digest  []byte
}

// KernelBootValue is PCR 11's value in the bank of h after systemd-stub
// measured uki, and the events that led to it.
func KernelBootValue(uki []byte, h crypto.Hash) ([]byte, []Event, error) {
	if !h.Available() {
		return nil, nil, fmt.Errorf("pcr: digest %v not available", h)
	}
	l, err := pecoff.Parse(uki)
	if err != nil {
		return nil, nil, fmt.Errorf("pcr: %w", err)
	}
	found := map[string]pecoff.Section{}
	for _, s := range l.Sections {
		// The stub compares only the length of the name it looks for
		// (a prefix match), and a later header wins.
		for _, want := range measuredSections {
			if strings.HasPrefix(s.Name, want) {
				found[want] = s
			}
		}
	}
	if s, ok := found[".linux"]; !ok || s.VirtualSize == 0 {
		return nil, nil, fmt.Errorf("pcr: no .linux section: not a UKI")
	}
	value := make([]byte, h.Size())
	var events []Event
	extend := func(section string, name bool, data []byte) {
		d := h.New()
		d.Write(data)
		ev := Event{Section: section, Name: name, Digest: d.Sum(nil)}
		events = append(events, ev)
		p := h.New()
		p.Write(value)
		p.Write(ev.Digest)
		value = p.Sum(nil)
	}
	for _, name := range measuredSections {
		s, ok := found[name]
		if !ok || s.VirtualSize == 0 { // the stub skips an empty section as missing
			continue
		}
		extend(name, true, append([]byte(name), 0))
		extend(name, false, s.Data(uki))
	}
	return value, events, nil
}
