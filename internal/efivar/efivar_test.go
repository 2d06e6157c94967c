package efivar_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelos/keel/internal/efivar"
	"github.com/keelos/keel/internal/sbkeys"
	"github.com/keelos/keel/internal/tooltest"
)

func TestGUIDRoundTrip(t *testing.T) {
	const s = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	g := efivar.MustParseGUID(s)
	// EFI_GLOBAL_VARIABLE as it sits in memory: the first three fields
	// little-endian.
	want := []byte{0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}
	if !bytes.Equal(g[:], want) || g.String() != s {
		t.Fatalf("%x %s", g[:], g)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d", "8be4df6193ca11d2aa0d00e098032b8c", "zbe4df61-93ca-11d2-aa0d-00e098032b8c"} {
		if _, err := efivar.ParseGUID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseSignatureListsRejectsBadSizes(t *testing.T) {
	owner := efivar.MustParseGUID("11111111-2222-3333-4444-555555555555")
	good := efivar.SignatureList(efivar.CertX509, owner, []byte("certificate"))
	sigs, err := efivar.ParseSignatureLists(append(bytes.Clone(good), good...))
	if err != nil || len(sigs) != 2 || sigs[1].Owner != owner || string(sigs[1].Data) != "certificate" {
		t.Fatalf("%+v %v", sigs, err)
	}
	for _, n := range []int{len(good) + 1, 27, 0xffffffff} {
		b := bytes.Clone(good)
		b[16], b[17], b[18], b[19] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
		if _, err := efivar.ParseSignatureLists(b); err == nil {
			t.Errorf("list size %d accepted", n)
		}
	}
	if _, err := efivar.ParseSignatureLists(good[:20]); err == nil {
		t.Error("truncated list accepted")
	}
}

// TestSameBytesAsEfitools writes a signature list and a signed db update
// with keel and with Debian's efitools (cert-to-efi-sig-list,
// sign-efi-sig-list) from the same certificate, key, owner and
// timestamp: with no signed attributes and RSA PKCS #1 v1.5 both are
// deterministic, so the files must be identical.
func TestSameBytesAsEfitools(t *testing.T) {
	tooltest.Need(t, "cert-to-efi-sig-list", "sign-efi-sig-list")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	cert, err := sbkeys.SelfSigned(key, "keel test KEK", ts, ts.AddDate(5, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(dir, "KEK.key")
	certFile := filepath.Join(dir, "KEK.crt")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)

	const owner = "6b2c4e5a-1234-4abc-8def-0123456789ab"
	esl := filepath.Join(dir, "db.esl")
	tooltest.Run(t, "cert-to-efi-sig-list", "-g", owner, certFile, esl)
	theirs, _ := os.ReadFile(esl)
	ours := efivar.SignatureList(efivar.CertX509, efivar.MustParseGUID(owner), cert.Raw)
	if !bytes.Equal(ours, theirs) {
		t.Fatalf("signature list differs from cert-to-efi-sig-list's:\nkeel %x\nefitools %x", ours, theirs)
	}

	auth := filepath.Join(dir, "db.auth")
	tooltest.Run(t, "sign-efi-sig-list", "-t", ts.Format("2006-01-02 15:04:05"), "-k", keyFile, "-c", certFile, "db", esl, auth)
	theirs, _ = os.ReadFile(auth)
	u := efivar.Update{Name: "db", GUID: efivar.ImageSecurityDatabase, Attributes: efivar.SecureBootAttributes, Time: ts, Data: ours}
	signed, err := u.Sign(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed, theirs) {
		t.Fatalf("db.auth differs from sign-efi-sig-list's (%d vs %d bytes)", len(signed), len(theirs))
	}

	a, err := efivar.ParseAuthenticated(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify("db", efivar.ImageSecurityDatabase, efivar.SecureBootAttributes, cert); err != nil {
		t.Errorf("efitools' db.auth does not verify: %v", err)
	}
	if err := a.Verify("KEK", efivar.GlobalVariable, efivar.SecureBootAttributes, cert); err == nil {
		t.Error("db.auth verified as a KEK update")
	}
	if got, ok := efivar.ParseTime(a.Time); !ok || !got.Equal(ts) {
		t.Errorf("timestamp %v, want %v", got, ts)
	}
}

func TestSignNeedsTimeBasedAttribute(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cert, _ := sbkeys.SelfSigned(key, "x", ts, ts.AddDate(1, 0, 0))
	u := efivar.Update{Name: "db", GUID: efivar.ImageSecurityDatabase, Attributes: efivar.NonVolatile, Time: ts}
	if _, err := u.Sign(key, cert); err == nil {
		t.Error("signed an update without the time-based attribute")
	}
}
