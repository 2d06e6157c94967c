package linuxkit

import (
	"strings"
	"testing"

	"github.com/keelos/keel/internal/spec"
)

func TestParseLabelTranslatesLinuxKitKeys(t *testing.T) {
	cfg, err := ParseLabel("service", "image x label org.mobyproject.config",
		[]byte(`{"capabilities":["CAP_NET_ADMIN"],"binds":["/etc/keel:/host-keel:ro","/run:/run"],"readonly":true,"net":"host","pid":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Capabilities) != 1 || cfg.Capabilities[0].Name() != "CAP_NET_ADMIN" {
		t.Errorf("capabilities = %v", cfg.Capabilities)
	}
	// LinuxKit mounts a bind without options rw and rshared.
	if want := []string{"/etc/keel:/host-keel:ro", "/run:/run:rw,rshared"}; strings.Join(cfg.Binds, " ") != strings.Join(want, " ") {
		t.Errorf("binds = %q, want %q", cfg.Binds, want)
	}
	if cfg.Readonly == nil || !*cfg.Readonly {
		t.Errorf("readonly = %v", cfg.Readonly)
	}
	if cfg.Net == nil || *cfg.Net != "host" {
		t.Errorf("net = %v", cfg.Net)
	}
	// LinuxKit's defaults for unset keys are not the label's.
	if cfg.Ipc != nil || cfg.Uts != nil || cfg.Pid != nil || cfg.Cgroup != nil {
		t.Errorf("namespaces set the label did not: ipc %v uts %v pid %v cgroup %v", cfg.Ipc, cfg.Uts, cfg.Pid, cfg.Cgroup)
	}
	if s := cfg.Settings(); len(s) != 4 {
		t.Errorf("settings = %v, want only the label's four keys", s)
	}
}

func TestParseLabelRefusesHostileInput(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{"capabilities":["CAP_NET_ADMIN"],"bogus":1}`, `1:35: bogus: unknown key of an image entry`},
		{`{"name":"x"}`, `name: unknown key of a label`},
		{`{"readonly":true,"readonly":false}`, `readonly: key given twice`},
		{`readonly: true`, `not JSON`},
		{`{"readonly":true} {}`, `not JSON`},
		{`["readonly"]`, `want a JSON object, not a list`},
		{`{"capabilities":["CAP_BOGUS"]}`, `capabilities`},
		{`{"maskedPaths":["/x"]}`, `not supported: keel has no key for it`},
		{`{"capabilities.add":["CAP_SYS_ADMIN"]}`, `a label has no list below it`},
		{`{"binds":["nosuch:/x"]}`, `no volume is named "nosuch"`},
		{`{"readonly":"yes"}`, `readonly`},
		{`{"sysctl":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 21), `nested more than 16 deep`},
		{`{"env":["A=` + strings.Repeat("x", spec.LabelMaxSize) + `"]}`, `more than the`},
	} {
		_, err := ParseLabel("service", "L", []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "L") {
			t.Errorf("%.60s: error %v, want one starting with L and holding %q", tc.data, err, tc.want)
		}
	}
}
