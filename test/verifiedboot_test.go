package test

// Verified boot through keel's commands: `keel keys generate`, `keel
// build --sign-key/--sign-cert`, `keel run qemu --secure-boot --keys
// --tpm` and `keel inspect --pcrs`.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/imageread"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/sbkeys"
	"github.com/keelos/keel/internal/sbom"
	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/tooltest"
)

// signedFormats are the EFI outputs the test signs and checks.
var signedFormats = []string{"uki", "iso-efi", "iso", "raw-efi", "qcow2-efi", "vhd"}

type signedBuild struct {
	keel, keys, otherKeys, dir string
	build                      time.Duration
}

// buildSigned generates two key hierarchies with `keel keys generate`
// and builds the Secure Boot spec signed with the first.
func buildSigned(t *testing.T) signedBuild {
	t.Helper()
	testenv.NeedNetwork(t)
	keel := keelBinary(t)
	work := t.TempDir()
	s := signedBuild{keel: keel, keys: filepath.Join(work, "keys"), otherKeys: filepath.Join(work, "other"), dir: filepath.Join(work, "out")}
	for _, d := range []string{s.keys, s.otherKeys} {
		if out, err := exec.Command(keel, "keys", "generate", "--bits", "2048", d).CombinedOutput(); err != nil {
			t.Fatalf("keel keys generate: %v\n%s", err, out)
		}
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	spec := filepath.Join(work, "sb.toml")
	writeFile(t, spec, []byte(fmt.Sprintf(secureBootSpec, abs("../init"), abs("../kernel/debian-cloud"), abs("../pkg/getty"))))
	begin := time.Now()
	cmd := exec.Command(keel, "build", "--arch", "amd64", "--dir", s.dir, "--format", strings.Join(signedFormats, ","), spec)
	// The environment's names for the two flags.
	cmd.Env = append(os.Environ(), "KEEL_SIGN_KEY="+filepath.Join(s.keys, "db.key"), "KEEL_SIGN_CERT="+filepath.Join(s.keys, "db.crt"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("keel build: %v\n%s", err, out)
	}
	s.build = time.Since(begin)
	if bytes.Contains(out, []byte("PRIVATE KEY")) {
		t.Error("keel build printed a private key")
	}
	return s
}

// TestBuildSignsEveryEFIOutput_Network checks the UKI inside every EFI output of
// a signed build with sbverify, against the db certificate and another,
// and with a byte changed; the SBOM names the certificate, and no output
// holds the private key.
func TestBuildSignsEveryEFIOutput_Network(t *testing.T) {
	testenv.NeedNetwork(t)
	tooltest.Need(t, "sbverify")
	s := buildSigned(t)
	t.Logf("signed build of %s took %v", strings.Join(signedFormats, ","), s.build.Round(time.Second))
	cert, err := sbkeys.LoadCertificate(filepath.Join(s.keys, "db.crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(s.keys, "db.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(key)
	if block == nil {
		t.Fatal("db.key holds no PEM block")
	}
	keyDER := block.Bytes
	files := map[string]string{"uki": "sb-amd64.efi", "iso-efi": "sb-amd64-efi.iso", "iso": "sb-amd64.iso",
		"raw-efi": "sb-amd64-efi.raw", "qcow2-efi": "sb-amd64-efi.qcow2", "vhd": "sb-amd64.vhd"}
	for _, f := range signedFormats {
		t.Run(f, func(t *testing.T) {
			p := filepath.Join(s.dir, files[f])
			im, err := imageread.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			u, err := im.UKI()
			if err != nil {
				t.Fatal(err)
			}
			efi := filepath.Join(t.TempDir(), "uki.efi")
			writeFile(t, efi, u)
			tooltest.Run(t, "sbverify", "--cert", filepath.Join(s.keys, "db.crt"), efi)
			if out, err := exec.Command("sbverify", "--cert", filepath.Join(s.otherKeys, "db.crt"), efi).CombinedOutput(); err == nil {
				t.Errorf("sbverify accepted the UKI against another certificate:\n%s", out)
			}
			changed := bytes.Clone(u)
			changed[len(u)/2] ^= 1
			writeFile(t, efi, changed)
			if out, err := exec.Command("sbverify", "--cert", filepath.Join(s.keys, "db.crt"), efi).CombinedOutput(); err == nil {
				t.Errorf("sbverify accepted the UKI with a byte changed:\n%s", out)
			}
			if img, err := os.ReadFile(p); err != nil {
				t.Fatal(err)
			} else if bytes.Contains(img, keyDER) {
				t.Errorf("%s holds the signing key", files[f])
			}
		})
	}
	doc, err := os.ReadFile(filepath.Join(s.dir, "sb-amd64"+sbom.FileSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if fp := fmt.Sprintf("%x", sha256.Sum256(cert.Raw)); !bytes.Contains(doc, []byte(sbom.SigningCertComment+fp)) {
		t.Errorf("the SBOM does not record the signing certificate's SHA-256 %s", fp)
	}
	if bytes.Contains(doc, []byte("PRIVATE KEY")) {
		t.Error("the SBOM holds a private key")
	}
}

// TestSecureBootRunSlow boots the signed qcow2-efi and iso-efi with `keel
// run qemu`'s machinery under OVMF Secure Boot with the keys enrolled,
// reads SecureBoot=1 and PCR 11 (swtpm) in the guest and compares it with
// `keel inspect --pcrs`; then `keel run qemu --secure-boot` exits 1,
// saying the firmware refused, for the UKI signed by other keys, changed
// after signing, and unsigned.
func TestSecureBootRunSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	tooltest.Need(t, "qemu-system-x86_64", "swtpm")
	s := buildSigned(t)
	qcow := filepath.Join(s.dir, "sb-amd64-efi.qcow2")
	out, err := exec.Command(s.keel, "inspect", "--pcrs", qcow).CombinedOutput()
	if err != nil {
		t.Fatalf("keel inspect --pcrs: %v\n%s", err, out)
	}
	want := regexp.MustCompile(`(?m)^11:sha256 ([0-9a-f]{64})$`).FindSubmatch(out)
	if want == nil {
		t.Fatalf("keel inspect --pcrs printed no SHA-256 PCR 11:\n%s", out)
	}
	enroll := func(dir string) *qemu.SecureBoot {
		var c [3]*x509.Certificate
		for i, r := range []string{"PK", "KEK", "db"} {
			var err error
			if c[i], err = sbkeys.LoadCertificate(filepath.Join(dir, r+".crt")); err != nil {
				t.Fatal(err)
			}
		}
		return &qemu.SecureBoot{PK: c[0], KEK: c[1], DB: c[2]}
	}
	for _, img := range []struct {
		file string
		tpm  bool
	}{{"sb-amd64-efi.qcow2", true}, {"sb-amd64-efi.iso", false}} {
		t.Run(img.file, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			begin := time.Now()
			m, err := qemu.Start(ctx, qemu.Options{Image: filepath.Join(s.dir, img.file), Snapshot: true, Accel: "tcg",
				SecureBoot: enroll(s.keys), TPM: img.tpm})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Kill()
			mustExpect(t, m, regexp.MustCompile(`Secure boot enabled`), 10*time.Minute)
			mustExpect(t, m, milestone("services-running"), 10*time.Minute)
			t.Logf("%s: services running %v after start under Secure Boot", img.file, time.Since(begin).Round(time.Second))
			m.Send("\nod -An -tx1 " + secureBootVar + "\n")
			mustExpect(t, m, regexp.MustCompile(`(?m)^\s*[0-9a-f]{2} 00 00 00 01\s*$`), time.Minute)
			if img.tpm {
				m.Send("\necho pcr11=$(cat /sys/class/tpm/tpm0/pcr-sha256/11)\n")
				got := mustExpect(t, m, regexp.MustCompile(`pcr11=([0-9A-Fa-f]{64})`), time.Minute)[1]
				if !strings.EqualFold(got, string(want[1])) {
					t.Errorf("guest PCR 11 %s, keel inspect --pcrs %s", got, want[1])
				}
			}
		})
	}

	signed, err := os.ReadFile(filepath.Join(s.dir, "sb-amd64.efi"))
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(signed)
	changed[len(changed)/2] ^= 1
	work := t.TempDir()
	changedFile := filepath.Join(work, "changed-amd64.efi")
	writeFile(t, changedFile, changed)
	unsignedFile := filepath.Join(work, "unsigned-amd64.efi")
	writeFile(t, unsignedFile, secureBootUKI(t))
	for _, c := range []struct{ name, image, keys string }{
		{"signed by another key", qcow, s.otherKeys},
		{"changed after signing", changedFile, s.keys},
		{"unsigned", unsignedFile, s.keys},
	} {
		t.Run(c.name, func(t *testing.T) {
			begin := time.Now()
			cmd := exec.Command(s.keel, "run", "qemu", "--accel", "tcg", "--snapshot", "--timeout", "10m",
				"--secure-boot", "--keys", c.keys, c.image)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			if err == nil || code != 1 {
				t.Fatalf("keel run qemu exited %d, want 1 (%v):\n%s", code, err, tail(string(out), 3000))
			}
			if !strings.Contains(string(out), "firmware refused") {
				t.Errorf("keel run qemu does not say the firmware refused the image:\n%s", tail(string(out), 3000))
			}
			if strings.Contains(string(out), "Linux version") {
				t.Errorf("the kernel started:\n%s", tail(string(out), 3000))
			}
			t.Logf("refused in %v", time.Since(begin).Round(time.Second))
		})
	}
}

func mustExpect(t *testing.T, m *qemu.Machine, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	got, err := m.Expect(re, d)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
