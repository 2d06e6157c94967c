package spec

import (
	"encoding/json"
	"io/fs"
	"testing"
)

func TestParseCPU(t *testing.T) {
	for in, want := range map[string]int64{
		"0.5": 500_000, "2": 2_000_000, "00.25": 250_000, "1.000001": 1_000_001,
		"0.0000005": 1, "0.0000004": 1, "0.12345649": 123_456, "0.1234565": 123_457, "0.9999996": 1_000_000,
		"9223372036853": 9_223_372_036_853_000_000,
	} {
		c, err := ParseCPU(in)
		if err != nil || c.Micros() != want || c.String() != in {
			t.Errorf("ParseCPU(%q) = %d (%q), %v; want %d", in, c.Micros(), c.String(), err, want)
		}
	}
	for _, in := range []string{"", "0", "0.0", "-1", ".5", "1.", "1e3", "0x1", "1.2.3", "9223372036854", "99999999999999999999"} {
		if c, err := ParseCPU(in); err == nil {
			t.Errorf("ParseCPU(%q) = %d, accepted", in, c.Micros())
		}
	}
}

// TestTypedValuesKeepTheirText checks that a label re-encoded, as
// pkgbuild writes it, is byte for byte what was read: each typed value
// writes its text as given, and an unset one is left out.
func TestTypedValuesKeepTheirText(t *testing.T) {
	in := `{"capabilities":["net_admin","ALL"],"ambient":["CAP_NET_RAW"],"devices":[{"path":"/dev/x","mode":"644"},{"path":"/dev/y"}],` +
		`"rlimits":["NOFILE,1,unlimited"],"resources":{"memory":"64m","cpu":"0.50"}}`
	c, err := ParseLabel("label", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(c)
	if err != nil || string(out) != in {
		t.Fatalf("re-encoded as\n%s (%v)\nwant\n%s", out, err, in)
	}
	if c.Capabilities[0].Name() != "CAP_NET_ADMIN" || !c.Capabilities[1].IsAll() || c.Devices[0].Mode.Mode() != 0o644 || c.Devices[1].Mode.IsSet() ||
		c.Rlimits[0].Name != "RLIMIT_NOFILE" || c.Rlimits[0].Hard != RlimitUnlimited ||
		c.Resources.Memory.Bytes() != 64<<20 || c.Resources.CPU.Micros() != 500_000 {
		t.Fatalf("decoded %+v", c)
	}
	if s := (Config{Rlimits: []Rlimit{{Name: "RLIMIT_CORE", Hard: RlimitUnlimited}}}).Settings(); len(s) != 1 || s[0].String() != `rlimits = ["RLIMIT_CORE,0,unlimited"]` {
		t.Errorf("an rlimit built in code is written %v", s)
	}
}

func TestFileModeSpecialBits(t *testing.T) {
	m := MustParse[FileMode]("04750")
	if m.Mode() != fs.ModeSetuid|0o750 || !m.IsSet() || m.String() != "04750" {
		t.Errorf("04750 = %v", m.Mode())
	}
	if z := MustParse[FileMode]("0000"); !z.IsSet() || z.Mode() != 0 {
		t.Errorf("0000 is a mode, got %v set %v", z.Mode(), z.IsSet())
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParse accepted a size of 0")
		}
	}()
	MustParse[Size]("0")
}
