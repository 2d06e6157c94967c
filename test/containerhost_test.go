package test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/ssh"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

const helloImage = "keel.test/hello:1"

// helloProgram is the workload containerd runs in the guest.
const helloProgram = `package main

import "fmt"

func main() { fmt.Println("hello from a keel container") }
`

// writeHelloImage writes a one-layer image holding a static hello program
// as a docker archive, the format `ctr images import` reads.
func writeHelloImage(t *testing.T, dir string) string {
	t.Helper()
	return writeProgramImage(t, dir, "hello", helloProgram, helloImage)
}

// writeProgramImage builds the Go program source as a static amd64 binary
// /EXE and writes it, as a one-layer image tagged tag whose command it
// is, to DIR/EXE.tar (a docker archive).
func writeProgramImage(t *testing.T, dir, exe, source, tag string) string {
	t.Helper()
	src := filepath.Join(dir, exe+"-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, data := range map[string]string{"go.mod": "module " + exe + "\n\ngo 1.22\n", "main.go": source} {
		if err := os.WriteFile(filepath.Join(src, file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, exe)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", exe, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := tarLayer(map[string][]byte{exe: data})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"/" + exe}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, exe+".tar")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// exampleSpec is examples/NAME.toml for a boot test: the same packages,
// with getty's passwordless root shell (so the test can drive the
// console) and each of files (in dir) shipped as /etc/keel/FILE; its
// "../" and "./" references are made absolute, so it builds from dir.
func exampleSpec(t *testing.T, dir, name string, files ...string) string {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(repo, "examples", name+".toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(example), `"../`, `"`+repo+`/`)
	s = strings.ReplaceAll(s, `"./`, `"`+repo+`/examples/`)
	getty := "name = \"getty\"\nimage = \"" + repo + "/pkg/getty\"\n"
	if !strings.Contains(s, getty) {
		t.Fatalf("examples/%s.toml no longer has the getty service this test expects", name)
	}
	s = strings.Replace(s, getty, getty+"env = [\"INSECURE=true\"]\n", 1)
	for _, f := range files {
		s += "\n[[file]]\npath = \"/etc/keel/" + f + "\"\nsource = \"" + f + "\"\n"
	}
	p := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBootContainerHostSlow boots the container-host example twice with a
// config drive and an empty data disk. It checks that metadata delivers
// an ssh key that lets the test in (and that a password does not), that
// format+mount prepare the data disk, that containerd runs an image
// imported with ctr, and that the disk's content survives a power-off
// and the second boot leaves the file system alone.
func TestBootContainerHostSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := t.TempDir()
	writeHelloImage(t, dir)
	specPath := exampleSpec(t, dir, "container-host", "hello.tar")
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{specPath}, Dir: dir, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
	}); err != nil {
		t.Fatalf("building the container host: %v", err)
	}

	authorized, signer := newSSHKey(t, "keel-test")
	host := diskMachine{
		dir: dir, kernel: filepath.Join(dir, "container-host-amd64-kernel"),
		userData: sshUserData(t, dir, authorized), dataDisk: filepath.Join(dir, "data.raw"),
	}

	t.Run("first boot", func(t *testing.T) {
		port := freePort(t)
		m, expect := host.boot(t, fmt.Sprintf("%d:22", port))
		for _, step := range []string{"sysctl", "rngd", "dhcpcd", "metadata", "format", "mount"} {
			expect(regexp.MustCompile(`keel: onboot ` + step + `: exited 0`))
		}
		expect(milestone("services-running"))

		if err := m.Send("\nkeel-ctl logs format\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`keel-format: formatted /dev/\w+ as ext4 \(label "keel-data"\)`))

		addr := fmt.Sprintf("127.0.0.1:%d", port)
		out := sshRun(t, addr, ssh.PublicKeys(signer), "cat /run/config/ssh/authorized_keys; echo ssh-ok-$((6*7))")
		if !strings.Contains(out, "keel-test") || !strings.Contains(out, "ssh-ok-42") {
			t.Errorf("ssh session output: %q", out)
		}
		if _, err := dialSSH(addr, ssh.Password("")); err == nil {
			t.Errorf("a password login was accepted")
		} else if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("password login: unexpected error %v", err)
		}

		if err := m.Send("\nctr images import /etc/keel/hello.tar && ctr run --rm " + helloImage + " hello1; " +
			"echo kept-$((6*7)) > /var/lib/containerd/keel-test; sync; echo wrote-file\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`(?m)^hello from a keel container`))
		expect(regexp.MustCompile(`(?m)^wrote-file`))
		powerOff(t, m, expect)
	})
	if t.Failed() {
		return
	}
	t.Run("second boot", func(t *testing.T) {
		m, expect := host.boot(t, fmt.Sprintf("%d:22", freePort(t)))
		expect(regexp.MustCompile(`keel: onboot mount: exited 0`))
		expect(milestone("services-running"))
		if err := m.Send("\nkeel-ctl logs format; cat /var/lib/containerd/keel-test\n"); err != nil {
			t.Fatal(err)
		}
		// The disk holds a file system now: format finds no empty disk.
		expect(regexp.MustCompile(`keel-format: no empty virtio disk: nothing to format`))
		expect(regexp.MustCompile(`(?m)^kept-42`))
		if strings.Contains(m.Console(), "keel-format: formatted") {
			t.Error("the second boot formatted the data disk again")
		}
		powerOff(t, m, expect)
	})
}

// sshUserData writes DIR/user-data, cloud-config that authorizes the
// authorized_keys line for root, and returns its path.
func sshUserData(t *testing.T, dir, authorized string) string {
	t.Helper()
	p := filepath.Join(dir, "user-data")
	ud := "#cloud-config\nssh_authorized_keys:\n  - " + authorized + "\n"
	if err := os.WriteFile(p, []byte(ud), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// diskMachine is one image booted again and again with the same config
// drive and data disk, as a cloud machine powered off and on.
type diskMachine struct {
	dir, kernel, userData, dataDisk string
	cmdline                         string // extra kernel arguments
}

// boot starts the machine with the ports published (HOST:GUEST), its
// console logged to DIR/console-TEST.log; expect waits up to 6 minutes
// for the console to match, failing the test if it does not.
func (d diskMachine) boot(t *testing.T, publish ...string) (*qemu.Machine, func(*regexp.Regexp) []string) {
	t.Helper()
	console, err := os.Create(filepath.Join(d.dir, "console-"+strings.ReplaceAll(t.Name(), "/", "-")+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { console.Close() })
	m, err := qemu.Start(context.Background(), qemu.Options{
		Image: d.kernel, Mem: 2048, Metadata: d.userData, Timeout: 14 * time.Minute, Console: console,
		Disks: []qemu.Disk{{Path: d.dataDisk, Size: 1 << 30}}, Publish: publish, Cmdline: d.cmdline,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console:\n%s", tail(m.Console(), 8000))
		}
		m.Kill()
	})
	return m, func(re *regexp.Regexp) []string {
		t.Helper()
		match, err := m.Expect(re, 6*time.Minute)
		if err != nil {
			t.Fatalf("waiting for %q: %v", re, err)
		}
		return match
	}
}

// powerOff presses the power button and waits for init to finish and
// QEMU to exit.
func powerOff(t *testing.T, m *qemu.Machine, expect func(*regexp.Regexp) []string) {
	t.Helper()
	if err := m.Powerdown(); err != nil {
		t.Fatal(err)
	}
	expect(milestone("shutdown-done"))
	if err := m.Wait(); err != nil {
		t.Fatal(err)
	}
}

// newSSHKey makes an ed25519 key for a test: its authorized_keys line,
// with comment, and the signer that logs in with it.
func newSSHKey(t *testing.T, comment string) (string, ssh.Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment, signer
}

func dialSSH(addr string, auth ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the host key is made at first boot
		Timeout:         30 * time.Second,
	})
}

// sshRun runs cmd over ssh, retrying the connection while sshd starts.
func sshRun(t *testing.T, addr string, auth ssh.AuthMethod, cmd string) string {
	t.Helper()
	var c *ssh.Client
	var err error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		if c, err = dialSSH(addr, auth); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ssh %s: %v", addr, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("ssh %s %q: %v\n%s", addr, cmd, err, out)
	}
	return string(out)
}

// tarLayer makes an image layer of executable files at the root.
func tarLayer(files map[string][]byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range sortedKeys(files) {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
