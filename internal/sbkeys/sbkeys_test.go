package sbkeys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelos/keel/internal/efivar"
	"github.com/keelos/keel/internal/tooltest"
)

var (
	start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

	hierOnce sync.Once
	hier     *Hierarchy
	hierErr  error
)

// testHierarchy is one generated hierarchy the tests share (RSA key
// generation is the slow part).
func testHierarchy(t *testing.T) *Hierarchy {
	t.Helper()
	hierOnce.Do(func() {
		hier, hierErr = Generate(Options{Name: "keel test", Bits: 2048, NotBefore: start, NotAfter: start.AddDate(10, 0, 0), Rand: rand.Reader})
	})
	if hierErr != nil {
		t.Fatal(hierErr)
	}
	return hier
}

func TestGenerateWritesHierarchy(t *testing.T) {
	h := testHierarchy(t)
	dir := filepath.Join(t.TempDir(), "keys")
	if err := h.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, role := range roles {
		st, err := os.Stat(filepath.Join(dir, role+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode %v, want 0600", role, st.Mode().Perm())
		}
		for _, ext := range []string{".crt", ".esl", ".auth"} {
			if _, err := os.Stat(filepath.Join(dir, role+ext)); err != nil {
				t.Error(err)
			}
		}
	}
	if h.PK.Cert.Subject.CommonName != "keel test PK" || h.DB.Cert.Subject.CommonName != "keel test db" {
		t.Errorf("names %q, %q", h.PK.Cert.Subject.CommonName, h.DB.Cert.Subject.CommonName)
	}
	back, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range roles {
		if !back.pair(role).Cert.Equal(h.pair(role).Cert) {
			t.Errorf("%s certificate read back differs", role)
		}
	}
	// Existing keys are never replaced.
	if err := h.Write(dir); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Errorf("writing over existing keys: %v", err)
	}
}

func TestAuthSignedByTheRightKeys(t *testing.T) {
	h := testHierarchy(t)
	pk, kek, db, err := h.Auth()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		guid    efivar.GUID
		auth    []byte
		signer  *x509.Certificate
		content *x509.Certificate
		wrong   *x509.Certificate
	}{
		{"PK", efivar.GlobalVariable, pk, h.PK.Cert, h.PK.Cert, h.KEK.Cert},
		{"KEK", efivar.GlobalVariable, kek, h.PK.Cert, h.KEK.Cert, h.KEK.Cert},
		{"db", efivar.ImageSecurityDatabase, db, h.KEK.Cert, h.DB.Cert, h.PK.Cert},
	} {
		a, err := efivar.ParseAuthenticated(c.auth)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(c.name, c.guid, efivar.SecureBootAttributes, c.signer); err != nil {
			t.Errorf("%s.auth: %v", c.name, err)
		}
		if err := a.Verify(c.name, c.guid, efivar.SecureBootAttributes, c.wrong); err == nil {
			t.Errorf("%s.auth verified against %s", c.name, c.wrong.Subject)
		}
		sigs, err := efivar.ParseSignatureLists(a.Data)
		if err != nil || len(sigs) != 1 || sigs[0].Type != efivar.CertX509 || !bytes.Equal(sigs[0].Data, c.content.Raw) || sigs[0].Owner != Owner(c.content) {
			t.Errorf("%s.auth holds %+v, %v", c.name, sigs, err)
		}
	}
	pk2, kek2, db2, _ := h.Auth()
	if !bytes.Equal(pk, pk2) || !bytes.Equal(kek, kek2) || !bytes.Equal(db, db2) {
		t.Error("the same hierarchy gave different .auth files")
	}
}

func TestSelfSignedIsDeterministic(t *testing.T) {
	h := testHierarchy(t)
	again, err := SelfSigned(h.DB.Key, "keel test db", start, start.AddDate(10, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Equal(h.DB.Cert) {
		t.Error("the same key and name gave another certificate")
	}
	if Owner(again) != Owner(h.DB.Cert) || Owner(h.DB.Cert) == Owner(h.KEK.Cert) {
		t.Error("owner GUIDs are not derived from the certificate")
	}
}

// TestEfitoolsReadsKeyDir checks the key directory with Debian's efitools:
// sig-list-to-certs finds each certificate in its .esl, and
// sign-efi-sig-list, given the directory's key and the .auth's timestamp,
// writes the very same .auth.
func TestEfitoolsReadsKeyDir(t *testing.T) {
	tooltest.Need(t, "sig-list-to-certs", "sign-efi-sig-list")
	h := testHierarchy(t)
	dir := filepath.Join(t.TempDir(), "keys")
	if err := h.Write(dir); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, role := range roles {
		tooltest.Run(t, "sig-list-to-certs", filepath.Join(dir, role+".esl"), filepath.Join(out, role))
		der, err := os.ReadFile(filepath.Join(out, role+"-0.der"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(der, h.pair(role).Cert.Raw) {
			t.Errorf("%s.esl: sig-list-to-certs finds another certificate", role)
		}
	}
	signer := map[string]string{"PK": "PK", "KEK": "PK", "db": "KEK"}
	ts := h.PK.Cert.NotBefore.Format("2006-01-02 15:04:05")
	for _, role := range roles {
		auth := filepath.Join(out, role+".auth")
		by := filepath.Join(dir, signer[role])
		tooltest.Run(t, "sign-efi-sig-list", "-t", ts, "-k", by+".key", "-c", by+".crt", role, filepath.Join(dir, role+".esl"), auth)
		theirs, _ := os.ReadFile(auth)
		ours, _ := os.ReadFile(filepath.Join(dir, role+".auth"))
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%s.auth differs from sign-efi-sig-list's", role)
		}
	}
}

func TestGenerateRejects(t *testing.T) {
	for _, o := range []Options{
		{Name: "", Bits: 2048, NotBefore: start, NotAfter: start.AddDate(1, 0, 0)},
		{Name: "x", Bits: 1024, NotBefore: start, NotAfter: start.AddDate(1, 0, 0)},
		{Name: "x", Bits: 2048, NotBefore: start, NotAfter: start},
	} {
		o.Rand = rand.Reader
		if _, err := Generate(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestParseKey(t *testing.T) {
	rsaKey := testHierarchy(t).DB.Key.(*rsa.PrivateKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	for name, c := range map[string]struct {
		pem []byte
		ok  bool
	}{
		"PKCS#1 RSA": {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), true},
		"PKCS#8 RSA": {pkcs8(rsaKey), true},
		"PKCS#8 EC":  {pkcs8(ecKey), true},
		"SEC1 EC, after parameters": {append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...), true},
		"P-384":         {pkcs8(p384), false},
		"RSA-1024":      {pkcs8(small), false},
		"encrypted":     {pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), false},
		"a certificate": {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testHierarchy(t).DB.Cert.Raw}), false},
		"not PEM":       {[]byte("hello"), false},
	} {
		_, err := ParseKey(c.pem)
		if (err == nil) != c.ok {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestLoadKeyPairChecksTheyBelongTogether(t *testing.T) {
	h := testHierarchy(t)
	dir := filepath.Join(t.TempDir(), "keys")
	if err := h.Write(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")); err != nil {
		t.Error(err)
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "db.key"), filepath.Join(dir, "KEK.crt")); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("mismatched key and certificate: %v", err)
	}
	der := filepath.Join(dir, "db.der")
	os.WriteFile(der, h.DB.Cert.Raw, 0o644)
	if _, err := LoadKeyPair(filepath.Join(dir, "db.key"), der); err != nil {
		t.Errorf("DER certificate: %v", err)
	}
	big := filepath.Join(dir, "big.key")
	os.WriteFile(big, make([]byte, maxPEM+1), 0o600)
	if _, err := LoadKeyPair(big, filepath.Join(dir, "db.crt")); err == nil {
		t.Error("an oversized key file was read")
	}
}
