package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// TestBootConvertedLinuxKitExamplesSlow converts YAML equivalents of
// LinuxKit's examples/getty.yml and examples/sshd.yml (testdata/linuxkit)
// with keel convert linuxkit, mapping LinuxKit's images to keel's
// packages with --image-map as a user would (Docker Hub is out of reach
// here), builds each with keel build --format kernel+initrd and boots it:
// onboot runs, every service runs, a service merged in from volume.yml
// writes into a volume it binds by name, and the sshd example lets in the
// key its files section took from ~/.ssh/id_rsa.pub.
func TestBootConvertedLinuxKitExamplesSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	testenv.NeedNetwork(t)
	t.Parallel()
	keel := keelBinary(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	maps := []string{
		"linuxkit/kernel=" + repo + "/kernel/debian-cloud",
		"linuxkit/init=" + repo + "/init",
		// keel's init runs the containers: no runc or containerd, and no
		// CA bundle is needed by these images.
		"linuxkit/runc=", "linuxkit/containerd=", "linuxkit/ca-certificates=",
	}
	for _, p := range []string{"sysctl", "rngd", "dhcpcd", "getty", "sshd"} {
		maps = append(maps, "linuxkit/"+p+"="+repo+"/pkg/"+p)
	}
	for _, ex := range []struct {
		name     string
		files    []string
		onboot   []string
		services []string
	}{
		// getty.yml merged with volume.yml: a volume a service binds.
		{"getty", []string{"getty.yml", "volume.yml"}, []string{"sysctl", "dhcpcd", "rngd"}, []string{"getty", "writer"}},
		{"sshd", []string{"sshd.yml"}, []string{"sysctl", "rngd1"}, []string{"dhcpcd", "getty", "sshd"}},
	} {
		t.Run(ex.name, func(t *testing.T) {
			dir := t.TempDir()
			home := filepath.Join(dir, "home")
			authorized, signer := newSSHKey(t, "keel-linuxkit-test")
			if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(home, ".ssh", "id_rsa.pub"), []byte(authorized+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(keel, args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "HOME="+home)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("keel %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
				}
				t.Logf("keel %s:\n%s", args[0], stderr.String())
				return string(out)
			}
			args := []string{"convert", "linuxkit", "-o", "build.toml"}
			for _, m := range maps {
				args = append(args, "--image-map", m)
			}
			for _, f := range ex.files {
				args = append(args, filepath.Join(repo, "test", "testdata", "linuxkit", f))
			}
			// Without --lenient: every key of the example has a keel equivalent.
			run(args...)
			run("build", "--arch", "amd64", "--format", "kernel+initrd", "--dir", dir, "build.toml")

			port := freePort(t)
			console, err := os.Create(filepath.Join(dir, "console.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer console.Close()
			m, err := qemu.Start(context.Background(), qemu.Options{
				Image: filepath.Join(dir, ex.name+"-amd64-kernel"), Mem: 1024, Timeout: 14 * time.Minute,
				Console: console, Publish: []string{fmt.Sprintf("%d:22", port)},
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
			expect := func(re *regexp.Regexp) []string {
				t.Helper()
				match, err := m.Expect(re, 6*time.Minute)
				if err != nil {
					t.Fatalf("waiting for %q: %v", re, err)
				}
				return match
			}
			for _, o := range ex.onboot {
				expect(regexp.MustCompile(`keel: onboot ` + o + `: exited 0`))
			}
			t.Logf("all services running at %ss", expect(milestone("services-running"))[1])
			if err := m.Send("\nkeel-ctl ps\n"); err != nil {
				t.Fatal(err)
			}
			for _, s := range ex.services {
				expect(regexp.MustCompile(`(?m)^` + s + `\s+running\s+\d+`))
			}
			if ex.name == "getty" {
				// The writer service wrote into the volume's directory of
				// the host, through its bind by the volume's name.
				if err := m.Send("cat /var/lib/volumes/shared/note\n"); err != nil {
					t.Fatal(err)
				}
				expect(regexp.MustCompile(`(?m)^written-by-writer`))
			}
			if ex.name == "sshd" {
				out := sshRun(t, fmt.Sprintf("127.0.0.1:%d", port), ssh.PublicKeys(signer), "echo linuxkit-ok-$((6*7))")
				if !strings.Contains(out, "linuxkit-ok-42") {
					t.Errorf("ssh session output: %q", out)
				}
			}
			if err := m.Powerdown(); err != nil {
				t.Fatal(err)
			}
			expect(milestone("shutdown-done"))
			if err := m.Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
