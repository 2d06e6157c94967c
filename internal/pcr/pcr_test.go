package pcr

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/keelos/keel/internal/pecoff/pecofftest"
	"github.com/keelos/keel/internal/tooltest"
)

// systemdMeasure is systemd 252's own predictor (Debian's systemd package).
const systemdMeasure = "/usr/lib/systemd/systemd-measure"

// payload are UKI sections, in file order unlike the measurement order.
var payload = []pecofftest.Section{
	{Name: ".initrd", Data: bytes.Repeat([]byte("initrd"), 7001)},
	{Name: ".cmdline", Data: []byte("console=ttyS0 panic=-1")},
	{Name: ".linux", Data: bytes.Repeat([]byte("kernel"), 20011)},
	{Name: ".dtb", Data: []byte("not really a device tree")},
	{Name: ".osrel", Data: []byte("ID=keel\nNAME=keel\n")},
}

// TestSameAsSystemdMeasure predicts PCR 11 for a UKI, in each bank, and
// compares it with `systemd-measure calculate --phase=` (only the stub's
// measurements: keel runs no systemd-pcrphase) given the same sections
// as files.
func TestSameAsSystemdMeasure(t *testing.T) {
	tooltest.Need(t, systemdMeasure)
	stub := []pecofftest.Section{{Name: ".text", Data: []byte{0xc3}}, {Name: ".sdmagic", Data: []byte("#### LoaderInfo: systemd-stub ####")}}
	uki := pecofftest.Image(append(stub, payload...), nil)
	dir := t.TempDir()
	var files []string
	for _, s := range payload {
		f := filepath.Join(dir, s.Name[1:])
		if err := os.WriteFile(f, s.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, "--"+s.Name[1:]+"="+f)
	}
	var events []Event
	for _, bank := range []struct {
		name string
		hash crypto.Hash
	}{{"sha1", crypto.SHA1}, {"sha256", crypto.SHA256}, {"sha384", crypto.SHA384}, {"sha512", crypto.SHA512}} {
		out := tooltest.Run(t, systemdMeasure, append([]string{"calculate", "--phase=", "--bank=" + bank.name}, files...)...)
		m := regexp.MustCompile(`11:` + bank.name + `=([0-9a-f]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-measure printed no PCR 11:\n%s", out)
		}
		got, ev, err := KernelBootValue(uki, bank.hash)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != m[1] {
			t.Errorf("%s: predicted %x, systemd-measure %s", bank.name, got, m[1])
		}
		events = ev
	}
	want := []string{".linux", ".linux", ".osrel", ".osrel", ".cmdline", ".cmdline", ".initrd", ".initrd", ".dtb", ".dtb"}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d", len(events), len(want))
	}
	for i, e := range events {
		if e.Section != want[i] || e.Name != (i%2 == 0) {
			t.Errorf("event %d: %+v, want %s", i, e, want[i])
		}
	}
}

func TestNotAUKI(t *testing.T) {
	img := pecofftest.Image([]pecofftest.Section{{Name: ".text", Data: []byte{0xc3}}}, nil)
	if _, _, err := KernelBootValue(img, crypto.SHA256); err == nil {
		t.Error("an image without .linux was measured")
	}
	if _, _, err := KernelBootValue([]byte("MZ"), crypto.SHA256); err == nil {
		t.Error("garbage was measured")
	}
}
