package spec

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const labelOrigin = "image reg.example/x:1 label org.keel.config"

// The single-key label values the spec's rules refuse are tested, with
// real images, in internal/build (TestBadLabelValuesAreRefused); the
// decoder's own strictness is tested here.

func TestParseLabelIsStrict(t *testing.T) {
	big := `{"env":["A=` + strings.Repeat("x", LabelMaxSize) + `"]}`
	for _, c := range []struct{ label, want string }{
		{`{"capabilites":["all"]}`, `:1:2: capabilites: unknown key; did you mean "capabilities"?`},
		{`{"allow-image-privileges":["all"]}`, `:1:2: allow-image-privileges: unknown key`},
		{`{"net":"new","net":"host"}`, `:1:14: invalid label: duplicate key "net"`},
		{`{"cwd":null}`, `:1:8: invalid label: null is not a value: leave the key out`},
		{`{"uid":0}{}`, `:1:10: invalid label: data after the JSON object`},
		{`["net"]`, `:1:1: invalid label: a label is a JSON object, not array`},
		{`{"uid":1.5}`, `:1:8: uid: expected integer, got float`},
		{`{"capabilities":"all"}`, `:1:17: capabilities: expected array, got string`},
		{`{"runtime":{"bind-ns":{"net":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{}}}}}}}}}}}}}}}}`, `invalid label: nested more than 16 deep`},
		{`{"env":["A=1"]`, `invalid label: unexpected EOF`},
		{`{"env" ["A=1"]}`, `:1:8: invalid label: invalid character '[' after object key`},
		{big, `bytes, more than the 1048576 a label may hold`},
	} {
		_, err := ParseLabel(labelOrigin, []byte(c.label))
		if err == nil {
			t.Errorf("%.60s: accepted", c.label)
			continue
		}
		if got := err.Error(); !strings.Contains(got, c.want) || !strings.HasPrefix(got, labelOrigin) {
			t.Errorf("%.60s:\n got %s\nwant %s", c.label, got, c.want)
		}
	}
}

// A package's [config] survives the label pkgbuild writes: JSON, as
// encoding/json gives it.
func TestParseLabelReadsWhatPackagesWrite(t *testing.T) {
	pk, err := ParsePackage("package.toml", []byte(fullPackage))
	if err != nil {
		t.Fatal(err)
	}
	pk.Config.Sysctl = map[string]string{"kernel.shmmax": "1"}
	data, err := json.Marshal(pk.Config)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLabel(labelOrigin, data)
	if err != nil {
		t.Fatalf("%s\n%v", data, err)
	}
	want := pk.Config
	dropEmpty(reflect.ValueOf(&want).Elem())
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	// Integers and booleans in sysctl and dotted tables read as in TOML.
	c, err := ParseLabel(labelOrigin, []byte(`{"sysctl":{"net":{"ipv4.ip_forward":1},"net.core.somaxconn":"64"},"capabilities":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Sysctl, map[string]string{"net.ipv4.ip_forward": "1", "net.core.somaxconn": "64"}) || c.Capabilities != nil {
		t.Fatalf("got %#v", c)
	}
}

func TestRefusedImagePrivileges(t *testing.T) {
	label, err := ParseLabel(labelOrigin, []byte(`{"capabilities":["all"],"pid":"host","net":"host","binds":["/:/host:rw,rshared"],"devices":[{"path":"/dev/*"}],`+
		`"uid":0,"oom-score-adj":-5,"no-new-privileges":false,"ipc":"new","env":["A=1"],"command":["/x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	all := `capabilities = ["all"]; net = "host"; pid = "host"; binds = ["/:/host:rw,rshared"]; devices = [{ path = "/dev/*" }]; uid = 0; oom-score-adj = -5; no-new-privileges = false`
	for _, c := range []struct {
		name  string
		entry Container
		img   ImageConfig
		want  string
	}{
		{"nothing allowed, non-root image", Container{}, ImageConfig{User: "1000"}, all},
		{"root image: uid 0 widens nothing", Container{}, ImageConfig{}, strings.Replace(all, "; uid = 0", "", 1)},
		{"named user counts as not root", Container{}, ImageConfig{User: "daemon"}, all},
		{"all allowed", Container{AllowImagePrivileges: []string{"all"}}, ImageConfig{User: "1000"}, ""},
		{"some allowed", Container{AllowImagePrivileges: []string{"capabilities", "binds", "uid", "oom-score-adj"}}, ImageConfig{User: "1000"},
			`net = "host"; pid = "host"; devices = [{ path = "/dev/*" }]; no-new-privileges = false`},
		{"entry sets the keys itself", Container{Config: Config{Capabilities: []Capability{}, Net: ptr("new"), Pid: ptr("host"), Binds: []string{},
			Devices: []Device{}, UID: ptr(uint32(7)), OOMScoreAdj: ptr(0), NoNewPrivileges: ptr(true)}}, ImageConfig{User: "1000"}, ""},
	} {
		var got []string
		for _, s := range c.entry.RefusedImagePrivileges(label, c.img) {
			got = append(got, s.String())
		}
		if g := strings.Join(got, "; "); g != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, g, c.want)
		}
	}
	// Settings that widen nothing need no allowance.
	harmless, err := ParseLabel(labelOrigin, []byte(`{"net":"new","capabilities":[],"oom-score-adj":100,"no-new-privileges":true,"readonly":false,"tmpfs":["/run"],"resources":{"pids":5}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := (Container{}).RefusedImagePrivileges(harmless, ImageConfig{User: "1000"}); len(r) != 0 {
		t.Errorf("refused %v", r)
	}
	for _, k := range ImagePrivilegeKeys() {
		configKey(&Config{}, k) // every key of the table is a Config key
	}
}

func TestImageConfigCheck(t *testing.T) {
	if err := (ImageConfig{Env: []string{"PATH=/bin", "A="}, WorkingDir: "/app", User: "1000:1000", Entrypoint: []string{"/x"}, Cmd: []string{""}}).Check("img"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ic   ImageConfig
		want string
	}{
		{ImageConfig{Env: []string{"1BAD=x"}}, `img: Env: "1BAD=x" is not KEY=value`},
		{ImageConfig{WorkingDir: "../.."}, `img: WorkingDir: "../.." is not an absolute path`},
		{ImageConfig{WorkingDir: "/app/../etc"}, `img: WorkingDir: "/app/../etc" is not a clean path`},
		{ImageConfig{User: "0:0:0"}, `img: User: "0:0:0" is not USER[:GROUP]`},
		{ImageConfig{User: "4294967296"}, `img: User: "4294967296": id out of range`},
		{ImageConfig{Entrypoint: []string{""}}, `img: Entrypoint: empty program name`},
		{ImageConfig{Cmd: []string{"/x", "a\x00b"}}, `img: Cmd: "a\x00b" contains a NUL byte`},
	} {
		err := c.ic.Check("img")
		if err == nil || err.Error() != c.want && !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %s", c.ic, err, c.want)
		}
	}
}

func TestParseImageUser(t *testing.T) {
	for user, want := range map[string]string{"": "0:0", "7": "7:0", "7:8": "7:8", "daemon": "?:0", "daemon:9": "?:9", "1:staff": "1:?"} {
		uid, gid, err := ParseImageUser(user)
		if err != nil {
			t.Fatalf("%q: %v", user, err)
		}
		show := func(p *uint32) string {
			if p == nil {
				return "?"
			}
			return strconv.FormatUint(uint64(*p), 10)
		}
		if got := show(uid) + ":" + show(gid); got != want {
			t.Errorf("%q: %s, want %s", user, got, want)
		}
	}
}

// FuzzLabel checks that no label makes the decoder panic, that it refuses
// with Errors only, and that an accepted label encodes (as pkgbuild writes
// labels) and decodes to the same Config.
func FuzzLabel(f *testing.F) {
	f.Add([]byte(`{"env":["1BAD=x"],"cwd":"../..","restart":"sometimes","hostname":"bad_host!","oom-score-adj":-99999}`))
	f.Add([]byte(`{"runtime":{"mkdir":["../../etc/evil"]},"sysctl":{"kernel.core_pattern":"|/pwn"},"uid":4294967296}`))
	f.Add([]byte(`{"capabilities":["all"],"pid":"host","net":"host","binds":["/:/host:rw,rshared"],"devices":[{"path":"/dev/*"}]}`))
	f.Add([]byte(`{"command":["/usr/bin/x","-v"],"env":["A=1"],"cwd":"/","uid":0,"readonly":true,"sysctl":{"net":{"ipv4.ip_forward":1}},` +
		`"resources":{"memory":"64M","cpu":"0.5","pids":3},"runtime":{"mkdir":["/x"],"interfaces":[{"name":"eth1","add":"veth","peer":"v1"}],"bind-ns":{"net":"/run/n"}},` +
		`"mounts":[{"type":"tmpfs","destination":"/m","options":["ro"]}],"devices":[{"path":"/dev/ttyS0","type":"c","major":4,"minor":64,"mode":"0620"}]}`))
	f.Add([]byte(`{"env":[],"sysctl":{},"resources":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseLabel("fuzz", data)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseLabel("fuzz", out)
		if err != nil {
			t.Fatalf("re-encoded label refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%#v\n%#v\n%s", c, c2, out)
		}
	})
}
