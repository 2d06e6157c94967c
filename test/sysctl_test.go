package test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// fwdService runs busybox from the getty package in a container of its
// own (no host namespace, no capability) whose net.ipv4.ip_forward is 1.
const fwdService = `
[[service]]
name = "fwd"
image = "REPO/pkg/getty"
command = ["/bin/sh", "-c", "echo fwd-in-ns=$(cat /proc/sys/net/ipv4/ip_forward); exec sleep 100000"]
net = "new"
pid = "new"
ipc = "new"
uts = "new"
cgroup = "new"
capabilities = []
binds = []
devices = []
sysctl = { "net.ipv4.ip_forward" = "1" }
`

// TestBootNamespacedSysctlSlow boots examples/minimal.toml with a service
// that sets a sysctl of its own network namespace, and checks that the
// service reads the value there while the host's stays the kernel's 0.
func TestBootNamespacedSysctlSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(repo, "examples", "minimal.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(example), `"../`, `"`+repo+`/`)
	const cmdline = `cmdline = "console=tty0 console=ttyS0 panic=-1"`
	if !strings.Contains(s, cmdline) {
		t.Fatal("examples/minimal.toml no longer has the command line this test extends")
	}
	s = strings.Replace(s, cmdline, `cmdline = "console=tty0 console=ttyS0 panic=-1 keel.console_log=1"`, 1)
	s += strings.ReplaceAll(fwdService, "REPO", repo)
	specFile := filepath.Join(dir, "sysctl.toml")
	if err := os.WriteFile(specFile, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{specFile}, Dir: out, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
	}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := qemu.Start(ctx, qemu.Options{Image: filepath.Join(out, "minimal-amd64-kernel"), Mem: 1024, Console: console, Timeout: 14 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("console:\n%s", tail(m.Console(), 6000))
		}
	}()
	expect := func(re string) []string {
		t.Helper()
		match, err := m.Expect(regexp.MustCompile(re), 6*time.Minute)
		if err != nil {
			t.Fatalf("waiting for %q: %v", re, err)
		}
		return match
	}
	expect(`keel: milestone services-running`)
	// From getty's shell, in the host's namespaces: the host's value, and
	// the service's namespace as the kernel reports it (Ip: Forwarding is
	// 1 when forwarding, 2 when not).
	if err := m.Send("\necho host-fwd=$(cat /proc/sys/net/ipv4/ip_forward)\n"); err != nil {
		t.Fatal(err)
	}
	expect(`host-fwd=0`)
	if err := m.Send("echo ns-fwd=$(grep '^Ip: [0-9]' /proc/$(keel-ctl pid fwd)/net/snmp | cut -d' ' -f2) host=$(grep '^Ip: [0-9]' /proc/1/net/snmp | cut -d' ' -f2)\n"); err != nil {
		t.Fatal(err)
	}
	expect(`ns-fwd=1 host=2`)
	// The service's own view, copied to the console (keel.console_log=1)
	// whenever it got there relative to the milestone.
	if !regexp.MustCompile(`\[fwd\] fwd-in-ns=1`).MatchString(m.Console()) {
		t.Error("the service did not read 1 from /proc/sys/net/ipv4/ip_forward in its namespace")
	}
	if err := m.Powerdown(); err != nil {
		t.Fatal(err)
	}
	expect(`keel: milestone shutdown-done`)
	if err := m.Wait(); err != nil {
		t.Fatal(err)
	}
}
