package test

// Verified boot, the Secure Boot half: a keel UKI signed in Go boots
// under OVMF's Secure Boot firmware with keys keel enrolled in the
// variable store, an unsigned or wrongly signed one is refused, and the
// PCR 11 keel predicts is what the TPM holds after the stub ran.
//
// QEMU is started directly: internal/qemu does not yet know Secure Boot
// firmware or a TPM (`keel run qemu --secure-boot --tpm` will).

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelos/keel/internal/authenticode"
	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/ovmfvars"
	"github.com/keelos/keel/internal/pcr"
	"github.com/keelos/keel/internal/sbkeys"
	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/tooltest"
)

const (
	ovmfSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfCode       = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfEmptyVars  = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// secureBootVar is the firmware's SecureBoot variable
	// (/sys/firmware/efi/efivars/SecureBoot-... on the host) in the getty
	// container's efivarfs mount: 4 bytes of attributes, then 1 when
	// enforcing.
	secureBootVar = "/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
)

// secureBootSpec is examples/minimal.toml plus efivarfs: the getty
// shell's container gets it mounted, so the test can read SecureBoot.
// Not under /sys/firmware: a container sees an empty, masked one there.
const secureBootSpec = `name = "sb"
init = [%q]

[kernel]
image = %q
cmdline = "console=ttyS0 panic=-1"
modules = ["efivarfs"]

[[service]]
name = "getty"
image = %q
env = ["INSECURE=true"]

[[service.mounts]]
type = "efivarfs"
source = "efivarfs"
destination = "/efivars"
options = ["ro", "nosuid", "nodev", "noexec"]
`

var sbUKI struct {
	once sync.Once
	data []byte
	err  error
}

// secureBootUKI builds the test spec's UKI once per run.
func secureBootUKI(t *testing.T) []byte {
	t.Helper()
	testenv.NeedNetwork(t)
	sbUKI.once.Do(func() {
		dir, err := runTempDir("keel-e2e-sb-")
		if err != nil {
			sbUKI.err = err
			return
		}
		abs := func(p string) string { a, _ := filepath.Abs(p); return a }
		spec := filepath.Join(dir, "sb.toml")
		text := fmt.Sprintf(secureBootSpec, abs("../init"), abs("../kernel/debian-cloud"), abs("../pkg/getty"))
		if sbUKI.err = os.WriteFile(spec, []byte(text), 0o644); sbUKI.err != nil {
			return
		}
		if _, sbUKI.err = build.Run(context.Background(), build.Options{
			Specs: []string{spec}, Dir: dir, Arch: []string{"amd64"}, Formats: []string{"uki"},
		}); sbUKI.err != nil {
			return
		}
		sbUKI.data, sbUKI.err = os.ReadFile(filepath.Join(dir, "sb-amd64.efi"))
	})
	if sbUKI.err != nil {
		t.Fatalf("building the Secure Boot test UKI: %v", sbUKI.err)
	}
	return sbUKI.data
}

// testKeys generates a Secure Boot hierarchy into a directory.
func testKeys(t *testing.T, name string) (*sbkeys.Hierarchy, string) {
	t.Helper()
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	h, err := sbkeys.Generate(sbkeys.Options{Name: name, Bits: 2048, NotBefore: start, NotAfter: start.AddDate(10, 0, 0), Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "keys")
	if err := h.Write(dir); err != nil {
		t.Fatal(err)
	}
	return h, dir
}

// TestSignedUKIPassesSbverify signs a UKI keel built (Debian's systemd
// stub, its COFF symbol table between the stub's and keel's sections) and
// checks it with Debian's sbverify and sbsign, and keel's own verifier.
func TestSignedUKIPassesSbverify(t *testing.T) {
	tooltest.Need(t, "sbverify", "sbsign")
	uki := secureBootUKI(t)
	h, keys := testKeys(t, "keel sbverify")
	_, otherKeys := testKeys(t, "keel other")
	dir := t.TempDir()

	begin := time.Now()
	signed, err := authenticode.Sign(uki, h.DB.Key, h.DB.Cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("signing a %d-byte UKI took %v and added %d bytes", len(uki), time.Since(begin).Round(time.Millisecond), len(signed)-len(uki))
	again, _ := authenticode.Sign(uki, h.DB.Key, h.DB.Cert)
	if !bytes.Equal(signed, again) {
		t.Error("signing the UKI twice gave different bytes")
	}
	good := filepath.Join(dir, "signed.efi")
	writeFile(t, good, signed)
	tooltest.Run(t, "sbverify", "--cert", filepath.Join(keys, "db.crt"), good)
	if _, err := authenticode.Verify(signed, h.DB.Cert); err != nil {
		t.Errorf("keel's verifier rejects what sbverify accepts: %v", err)
	}

	other := filepath.Join(otherKeys, "db.crt")
	if out, err := exec.Command("sbverify", "--cert", other, good).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepted the UKI against another certificate:\n%s", out)
	}
	changed := bytes.Clone(signed)
	changed[len(uki)/2] ^= 1 // inside .linux
	bad := filepath.Join(dir, "changed.efi")
	writeFile(t, bad, changed)
	if out, err := exec.Command("sbverify", "--cert", filepath.Join(keys, "db.crt"), bad).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepted the UKI with a byte changed:\n%s", out)
	}
	if _, err := authenticode.Verify(changed, h.DB.Cert); err == nil {
		t.Error("keel's verifier accepted the UKI with a byte changed")
	}

	// Debian's sbsign, same key: same Authenticode digest, and each
	// verifier accepts the other's signature.
	in := filepath.Join(dir, "unsigned.efi")
	writeFile(t, in, uki)
	theirs := filepath.Join(dir, "sbsign.efi")
	tooltest.Run(t, "sbsign", "--key", filepath.Join(keys, "db.key"), "--cert", filepath.Join(keys, "db.crt"), "--output", theirs, in)
	sb, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := authenticode.Signatures(sb)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := authenticode.Digest(uki, crypto.SHA256)
	if len(sigs) != 1 || !bytes.Equal(sigs[0].Digest, want) {
		t.Errorf("sbsign signed the digest %x, keel computes %x", sigs[0].Digest, want)
	}
	if _, err := authenticode.Verify(sb, h.DB.Cert); err != nil {
		t.Errorf("keel's verifier rejects sbsign's signature: %v", err)
	}
	t.Logf("Authenticode SHA-256 %x; sbsign's signed file is %d bytes, keel's %d (sbsign adds signingTime and S/MIME capabilities)", want, len(sb), len(signed))
}

// TestSecureBootEnforcedSlow boots the signed UKI under OVMF's Secure
// Boot firmware with keel's keys enrolled: the kernel starts and finds
// Secure Boot enabled. The same UKI unsigned, signed by another key, or
// with a byte changed after signing is refused by the firmware.
func TestSecureBootEnforcedSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	tooltest.Need(t, "qemu-system-x86_64")
	uki := secureBootUKI(t)
	h, _ := testKeys(t, "keel secure boot")
	other, _ := testKeys(t, "keel other")
	enrolled := enrolledVars(t, h)

	signed, err := authenticode.Sign(uki, h.DB.Key, h.DB.Cert)
	if err != nil {
		t.Fatal(err)
	}
	m := startQEMU(t, qemuConfig{code: ovmfSecureCode, vars: enrolled, uki: signed})
	m.expect(t, regexp.MustCompile(`Secure boot enabled`), 10*time.Minute) // the kernel's own finding
	m.expect(t, milestone("init"), 5*time.Minute)
	m.expect(t, milestone("services-running"), 5*time.Minute)
	m.send(t, "\nod -An -tx1 "+secureBootVar+"\n")
	sb := m.expect(t, regexp.MustCompile(`(?m)^\s*[0-9a-f]{2} 00 00 00 01\s*$`), time.Minute)
	t.Logf("SecureBoot variable: %s", strings.TrimSpace(sb[0]))
	m.kill()

	wrongKey, err := authenticode.Sign(uki, other.DB.Key, other.DB.Cert)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(signed)
	changed[len(uki)/2] ^= 1
	for _, c := range []struct {
		name string
		uki  []byte
	}{{"unsigned", uki}, {"signed by another key", wrongKey}, {"changed after signing", changed}} {
		t.Run(c.name, func(t *testing.T) {
			m := startQEMU(t, qemuConfig{code: ovmfSecureCode, vars: enrolled, uki: c.uki})
			defer m.kill()
			refused := m.expect(t, regexp.MustCompile(`failed to load Boot\d+[^\n]*Access Denied`), 10*time.Minute)
			t.Logf("firmware: %s", refused[0])
			// Give it time to try anything else: the kernel must never start.
			time.Sleep(20 * time.Second)
			if con := m.console(); strings.Contains(con, "Linux version") || milestone("init").MatchString(con) {
				t.Fatalf("the kernel started:\n%s", tail(con, 3000))
			}
		})
	}
}

// TestPCR11MatchesPredictionSlow boots the UKI with a software TPM
// (swtpm) and compares the PCR 11 the guest reads with keel's prediction.
func TestPCR11MatchesPredictionSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	tooltest.Need(t, "qemu-system-x86_64", "swtpm")
	uki := secureBootUKI(t)
	want, _, err := pcr.KernelBootValue(uki, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := os.ReadFile(ovmfEmptyVars)
	if err != nil {
		t.Fatal(err)
	}
	m := startQEMU(t, qemuConfig{code: ovmfCode, vars: vars, uki: uki, tpm: true})
	m.expect(t, milestone("services-running"), 10*time.Minute)
	m.send(t, "\necho pcr11=$(cat /sys/class/tpm/tpm0/pcr-sha256/11)\n")
	got := m.expect(t, regexp.MustCompile(`pcr11=([0-9A-Fa-f]{64})`), time.Minute)[1]
	if !strings.EqualFold(got, hex.EncodeToString(want)) {
		t.Errorf("guest PCR 11 %s, predicted %x", got, want)
	}
	t.Logf("PCR 11 (SHA-256): guest %s, predicted %x", got, want)
	m.kill()
}

// enrolledVars is OVMF's empty variable store with h's keys enrolled and
// Secure Boot enabled.
func enrolledVars(t *testing.T, h *sbkeys.Hierarchy) []byte {
	t.Helper()
	tmpl, err := os.ReadFile(ovmfEmptyVars)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := ovmfvars.Write(tmpl, ovmfvars.SecureBoot(
		sbkeys.SignatureList(h.PK.Cert), sbkeys.SignatureList(h.KEK.Cert), sbkeys.SignatureList(h.DB.Cert), h.PK.Cert.NotBefore))
	if err != nil {
		t.Fatal(err)
	}
	return vars
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type qemuConfig struct {
	code string // OVMF code flash
	vars []byte // its variable store, copied
	uki  []byte // placed on an ESP as the removable-media boot file
	tpm  bool   // attach swtpm
}

// vm is a running QEMU with its serial console collected.
type vm struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	mu   sync.Mutex
	con  bytes.Buffer
	seen int // where the next expect starts
	done chan struct{}
}

func startQEMU(t *testing.T, c qemuConfig) *vm {
	t.Helper()
	dir := t.TempDir()
	boot := filepath.Join(dir, "esp", "EFI", "BOOT")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(boot, "BOOTX64.EFI"), c.uki)
	vars := filepath.Join(dir, "vars.fd")
	writeFile(t, vars, c.vars)
	args := []string{
		"-M", "q35,smm=on", "-accel", "tcg", "-cpu", "qemu64", "-m", "1024", "-smp", "1",
		"-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
		// The variable store may only be written from SMM: what makes
		// Secure Boot's keys tamper-proof from the OS.
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-global", "ICH9-LPC.disable_s3=1",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + c.code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-drive", "if=none,id=esp,format=raw,readonly=on,file=fat:" + filepath.Join(dir, "esp"),
		"-device", "virtio-blk-pci,drive=esp,bootindex=0",
	}
	if c.tpm {
		sock := filepath.Join(dir, "swtpm.sock")
		state := filepath.Join(dir, "tpm")
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		tpm := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state,
			"--ctrl", "type=unixio,path="+sock)
		var tpmLog bytes.Buffer
		tpm.Stdout, tpm.Stderr = &tpmLog, &tpmLog
		if err := tpm.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			tpm.Process.Kill()
			tpm.Wait()
			if t.Failed() {
				t.Logf("swtpm:\n%s", tpmLog.String())
			}
		})
		for i := 0; ; i++ { // until swtpm listens
			if _, err := os.Stat(sock); err == nil {
				break
			} else if i == 100 {
				t.Fatalf("swtpm did not create %s", sock)
			}
			time.Sleep(50 * time.Millisecond)
		}
		args = append(args, "-chardev", "socket,id=chrtpm,path="+sock,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0")
	}
	m := &vm{cmd: exec.Command("qemu-system-x86_64", args...), done: make(chan struct{})}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stderr = &lockedWriter{m}
	if m.in, err = m.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(&lockedWriter{m}, out)
		m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("console:\n%s", tail(m.console(), 6000))
		}
	})
	return m
}

type lockedWriter struct{ m *vm }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	w.m.con.Write(bytes.ReplaceAll(p, []byte("\r"), nil))
	return len(p), nil // all of p is taken, \r or not
}

func (m *vm) console() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.con.String()
}

// expect waits for re on the console after the previous match.
func (m *vm) expect(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m.mu.Lock()
		text := m.con.String()[m.seen:]
		if loc := re.FindStringSubmatchIndex(text); loc != nil {
			match := make([]string, len(loc)/2)
			for i := range match {
				if loc[2*i] >= 0 {
					match[i] = text[loc[2*i]:loc[2*i+1]]
				}
			}
			m.seen += loc[1]
			m.mu.Unlock()
			return match
		}
		m.mu.Unlock()
		select {
		case <-m.done:
			t.Fatalf("QEMU exited while waiting for %q", re)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the console within %v", re, timeout)
		}
	}
}

func (m *vm) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(m.in, s); err != nil {
		t.Fatal(err)
	}
}

func (m *vm) kill() {
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
	}
	<-m.done
}
