package test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// syscallProbe reports, on one line, the seccomp mode and no_new_privs of
// its process and what keyctl and uname return, then stays running.
const syscallProbe = `package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

func result(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.ReplaceAll(err.Error(), " ", "-")
}

func main() {
	status, _ := os.ReadFile("/proc/self/status")
	mode, nnp := "?", "?"
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			mode = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "NoNewPrivs:"); ok {
			nnp = strings.TrimSpace(v)
		}
	}
	session := -3 // KEY_SPEC_SESSION_KEYRING
	var keyctl error
	if _, _, e := syscall.RawSyscall(syscall.SYS_KEYCTL, 0, uintptr(session), 1); e != 0 {
		keyctl = e
	}
	var u syscall.Utsname
	uname := syscall.Uname(&u)
	fmt.Printf("probe seccomp=%s nnp=%s keyctl=%s uname=%s\n", mode, nnp, result(keyctl), result(uname))
	for {
		time.Sleep(time.Hour)
	}
}
`

// TestBootSeccompSlow boots services that hold CAP_SYS_ADMIN under the
// default profile, unconfined and under a custom profile from the spec's
// directory, and reads on the console what each may call: the default
// profile refuses keyctl with EPERM, unconfined does not, and the custom
// profile refuses only uname (with EACCES).
func TestBootSeccompSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	writeProgramImage(t, dir, "probe", syscallProbe, "keel.test/syscall-probe:1")
	if err := os.MkdirAll(filepath.Join(dir, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}`
	if err := os.WriteFile(filepath.Join(dir, "profiles", "no-uname.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := `name = "seccomp"
init = ["` + repo + `/init"]

[kernel]
image = "` + repo + `/kernel/debian-cloud"
cmdline = "console=ttyS0 panic=-1 keel.console_log=1"

[[service]]
name = "admin-default"
image = "./probe.tar"
capabilities = ["CAP_SYS_ADMIN"]

[[service]]
name = "admin-unconfined"
image = "./probe.tar"
capabilities = ["CAP_SYS_ADMIN"]
seccomp = "unconfined"

[[service]]
name = "custom"
image = "./probe.tar"
capabilities = ["CAP_SYS_ADMIN"]
no-new-privileges = true
seccomp = "profiles/no-uname.json"
`
	specPath := filepath.Join(dir, "seccomp.toml")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{specPath}, Dir: dir, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
	}); err != nil {
		t.Fatalf("building: %v", err)
	}
	m, err := qemu.Start(context.Background(), qemu.Options{
		Image: filepath.Join(dir, "seccomp-amd64-kernel"), Mem: 1024, Timeout: 14 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("console:\n%s", tail(m.Console(), 6000))
		}
	}()
	// The services start together: their lines come in any order.
	want := []*regexp.Regexp{
		regexp.MustCompile(`\[admin-default\] probe seccomp=2 nnp=0 keyctl=operation-not-permitted uname=ok`),
		regexp.MustCompile(`\[admin-unconfined\] probe seccomp=0 nnp=0 keyctl=ok uname=ok`),
		regexp.MustCompile(`\[custom\] probe seccomp=2 nnp=1 keyctl=ok uname=permission-denied`),
	}
	if _, err := m.Expect(milestone("services-running"), 6*time.Minute); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		var missing []string
		for _, re := range want {
			if !re.MatchString(m.Console()) {
				missing = append(missing, re.String())
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console lacks %q", missing)
		}
	}
	if err := m.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Expect(milestone("shutdown-done"), 6*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(); err != nil {
		t.Fatal(err)
	}
}
