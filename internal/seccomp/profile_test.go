package seccomp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerStyle is a profile as Docker users write them: archMap, a rule
// with includes, one with the old single name, one with args.
const dockerStyle = `{
	"defaultAction": "SCMP_ACT_ERRNO",
	"defaultErrnoRet": 1,
	"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
	"syscalls": [
		{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
		{"name": "getpid", "action": "SCMP_ACT_ALLOW", "comment": "old style"},
		{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"], "minKernel": "4.8"}},
		{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}
	]
}`

func TestParseDockerFormat(t *testing.T) {
	p, err := Parse([]byte(dockerStyle))
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != ActErrno || *p.DefaultErrnoRet != 1 || len(p.Syscalls) != 4 || p.Syscalls[1].Name != "getpid" {
		t.Fatalf("parsed %+v", p)
	}
	m := newMachine(t, compile(t, p, "amd64", sysAdmin), "amd64")
	for call, want := range map[string]uint32{"read": allowed, "getpid": allowed, "mount": allowed, "getppid": eperm} {
		if got := m.call(call); got != want {
			t.Errorf("%s = %#x, want %#x", call, got, want)
		}
	}
	if got := m.call("personality", 8); got != allowed {
		t.Errorf("personality(8) = %#x", got)
	}

	// The default profile survives a trip through JSON: it is in the
	// format custom profiles use.
	data, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, Default()) {
		t.Error("the default profile changed through JSON")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`{"defaultAction": "SCMP_ACT_ERRNO", "sycalls": []}`, `unknown field "sycalls"`},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "arg": []}]}`, `unknown field "arg"`},
		{`{"syscalls": []}`, "defaultAction is required"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}`, "flags"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/x.sock"}`, "listenerPath"},
		{`{"defaultAction": "SCMP_ACT_ERRNO"} {}`, "data after the profile"},
		{`defaultAction = "x"`, "not a seccomp profile"},
	} {
		_, err := Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.doc, err, c.want)
		}
	}
}

func TestReadFileStaysInsideItsDirectory(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	write := func(p, data string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "profiles", "web.json"), dockerStyle)
	write(filepath.Join(outside, "secret.json"), dockerStyle)
	if err := os.Symlink("profiles/web.json", filepath.Join(dir, "inside-link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.json"), filepath.Join(dir, "outside-link.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.json")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "big.json"), `{"defaultAction": "SCMP_ACT_ERRNO", "comment": "`+strings.Repeat("x", MaxProfileSize)+`"}`)

	for _, ok := range []string{"profiles/web.json", "inside-link.json"} {
		if _, err := ReadFile(dir, ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, c := range []struct{ rel, want string }{
		{"../" + filepath.Base(outside) + "/secret.json", "want a path inside"},
		{"/etc/passwd", "want a path inside"},
		{"outside-link.json", "escapes"},
		{"zero.json", "escapes"},
		{"fifo.json", "not a regular file"},
		{"profiles", "not a regular file"},
		{"big.json", "larger than"},
		{"missing.json", "no such file"},
	} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(dir, c.rel); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: err = %v, want one containing %q", c.rel, err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: ReadFile hangs", c.rel)
		}
	}
}
