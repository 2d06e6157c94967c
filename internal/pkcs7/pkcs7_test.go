package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelos/keel/internal/tooltest"
)

type signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newSigner(t testing.TB, cn string, parent *signer) signer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(len(cn))), Subject: pkix.Name{CommonName: cn},
		NotBefore: start, NotAfter: start.AddDate(1, 0, 0), BasicConstraintsValid: true, IsCA: parent == nil}
	issuer, issuerKey := tmpl, key
	if parent != nil {
		issuer, issuerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return signer{key, cert}
}

func (s signer) files(t *testing.T) (keyFile, certFile string) {
	t.Helper()
	dir := t.TempDir()
	keyFile, certFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.key)}), 0o600)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw}), 0o644)
	return keyFile, certFile
}

func detached(t *testing.T, s signer, data []byte, attrs bool) []byte {
	t.Helper()
	sd, err := Sign(Request{ContentType: OIDData, Signed: data, Attributes: attrs, Hash: crypto.SHA256, Signer: s.key, Certificate: s.cert})
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

func TestSignParseVerify(t *testing.T) {
	s := newSigner(t, "signer", nil)
	data := []byte("the signed bytes")
	for _, attrs := range []bool{false, true} {
		der := detached(t, s, data, attrs)
		if !bytes.Equal(der, detached(t, s, data, attrs)) {
			t.Errorf("attributes %v: not deterministic", attrs)
		}
		sd, err := Parse(WrapContentInfo(der))
		if err != nil {
			t.Fatal(err)
		}
		if (sd.Signers[0].RawAttributes != nil) != attrs || sd.Content != nil {
			t.Errorf("attributes %v: parsed %+v", attrs, sd.Signers[0])
		}
		cert, err := sd.VerifySignature(&sd.Signers[0], data)
		if err != nil || !cert.Equal(s.cert) {
			t.Errorf("attributes %v: %v", attrs, err)
		}
		if _, err := sd.VerifySignature(&sd.Signers[0], []byte("other bytes")); err == nil {
			t.Errorf("attributes %v: other data verified", attrs)
		}
	}
}

func TestSignRefusesAForeignKey(t *testing.T) {
	a, b := newSigner(t, "a", nil), newSigner(t, "b", nil)
	if _, err := Sign(Request{ContentType: OIDData, Hash: crypto.SHA256, Signer: a.key, Certificate: b.cert}); err == nil {
		t.Error("signed with a key that is not the certificate's")
	}
}

func TestChains(t *testing.T) {
	root := newSigner(t, "root", nil)
	leaf := newSigner(t, "leaf", &root)
	other := newSigner(t, "other", nil)
	sd := &SignedData{Certificates: []*x509.Certificate{leaf.cert}}
	if !sd.Chains(leaf.cert, root.cert) || !sd.Chains(leaf.cert, leaf.cert) {
		t.Error("leaf does not chain to its issuer or itself")
	}
	if sd.Chains(leaf.cert, other.cert) {
		t.Error("leaf chains to an unrelated certificate")
	}
}

// TestOpenSSLAgrees checks both directions with OpenSSL's cms tool: it
// verifies keel's detached signatures, and keel verifies its own.
func TestOpenSSLAgrees(t *testing.T) {
	tooltest.Need(t, "openssl")
	s := newSigner(t, "signer", nil)
	keyFile, certFile := s.files(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.WriteFile(data, []byte("bytes to sign\n"), 0o644)
	for _, attrs := range []bool{false, true} {
		p7 := filepath.Join(dir, "keel.p7")
		os.WriteFile(p7, WrapContentInfo(detached(t, s, []byte("bytes to sign\n"), attrs)), 0o644)
		tooltest.Run(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", p7, "-content", data,
			"-CAfile", certFile, "-purpose", "any", "-no_check_time", "-out", os.DevNull)

		theirs := filepath.Join(dir, "openssl.p7")
		args := []string{"cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256", "-in", data, "-signer", certFile, "-inkey", keyFile, "-out", theirs}
		if !attrs {
			args = append(args, "-noattr")
		}
		tooltest.Run(t, "openssl", args...)
		der, _ := os.ReadFile(theirs)
		sd, err := Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sd.VerifySignature(&sd.Signers[0], []byte("bytes to sign\n")); err != nil {
			t.Errorf("attributes %v: OpenSSL's signature does not verify: %v", attrs, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	s := newSigner(f, "signer", nil)
	for _, attrs := range []bool{false, true} {
		sd, err := Sign(Request{ContentType: OIDData, Content: []byte{4, 2, 'h', 'i'}, Signed: []byte("hi"), Attributes: attrs, Hash: crypto.SHA256, Signer: s.key, Certificate: s.cert})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sd)
		f.Add(WrapContentInfo(sd))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := Parse(b)
		if err != nil {
			return
		}
		for i := range sd.Signers {
			sd.VerifySignature(&sd.Signers[i], sd.ContentOctets)
		}
	})
}
