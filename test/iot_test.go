package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// TestBootIoTArm64Slow builds examples/iot-arm64.toml, with a test key in
// its authorized_keys file, as an arm64 EFI disk and boots it under
// qemu-system-aarch64: getty offers a login on the serial console (the
// example is not INSECURE), dhcpcd configures user-net, and sshd lets the
// key in through a published port.
func TestBootIoTArm64Slow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(repo, "examples", "iot-arm64.toml"))
	if err != nil {
		t.Fatal(err)
	}
	authorized, signer := newSSHKey(t, "keel-iot-test")
	const keys = "# One public key per line, for root.\n"
	s := strings.ReplaceAll(string(example), `"../`, `"`+repo+`/`)
	if !strings.Contains(s, keys) {
		t.Fatal("examples/iot-arm64.toml no longer has the authorized_keys file this test fills in")
	}
	s = strings.Replace(s, keys, keys+authorized+"\n", 1)
	specPath := filepath.Join(dir, "iot-arm64.toml")
	if err := os.WriteFile(specPath, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{specPath}, Dir: dir, Formats: []string{"raw-efi"},
	}); err != nil {
		t.Fatalf("building the iot example: %v", err)
	}

	port := freePort(t)
	m, err := qemu.Start(context.Background(), qemu.Options{
		Image: filepath.Join(dir, "iot-arm64-efi.raw"), Mem: 1024, Timeout: 14 * time.Minute,
		Publish: []string{fmt.Sprintf("%d:22", port)},
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
	expect := func(re *regexp.Regexp) {
		t.Helper()
		if _, err := m.Expect(re, 6*time.Minute); err != nil {
			t.Fatalf("waiting for %q: %v", re, err)
		}
	}
	expect(regexp.MustCompile(`keel: onboot dhcpcd: exited 0`))
	expect(milestone("services-running"))
	expect(regexp.MustCompile(`keel-iot login:`))

	out := sshRun(t, fmt.Sprintf("127.0.0.1:%d", port), ssh.PublicKeys(signer),
		"uname -m; ip -4 addr show eth0 | grep -o 'inet [0-9./]*'; grep ^Seccomp: /proc/self/status; echo iot-ok-$((6*7))")
	// The session runs under sshd's seccomp filter, the arm64 program.
	for _, want := range []string{"aarch64", "inet 10.0.2.15/24", "Seccomp:\t2", "iot-ok-42"} {
		if !strings.Contains(out, want) {
			t.Errorf("ssh session output lacks %q: %q", want, out)
		}
	}

	if err := m.Powerdown(); err != nil {
		t.Fatal(err)
	}
	expect(milestone("shutdown-done"))
	if err := m.Wait(); err != nil {
		t.Fatal(err)
	}
}
