package authenticode

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/pecoff"
	"github.com/keelos/keel/internal/pecoff/pecofftest"
	"github.com/keelos/keel/internal/sbkeys"
	"github.com/keelos/keel/internal/tooltest"
)

type keyPair struct {
	key      crypto.Signer
	cert     *x509.Certificate
	keyFile  string
	certFile string
}

// newKey makes a key and self-signed certificate, also written as PEM
// files for the outside tools.
func newKey(t testing.TB, cn string, key crypto.Signer) keyPair {
	t.Helper()
	if key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cert, err := sbkeys.SelfSigned(key, cn, start, start.AddDate(10, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := keyPair{key: key, cert: cert, keyFile: filepath.Join(dir, "key.pem"), certFile: filepath.Join(dir, "cert.pem")}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	write(t, p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	return p
}

func write(t testing.TB, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testImage is an EFI image laid out as keel's UKIs are: the stub's
// sections, a gap (its COFF symbol table), the payload sections.
func testImage() []byte {
	fill := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7) ^ seed
		}
		return b
	}
	return pecofftest.Image([]pecofftest.Section{
		{Name: ".text", Data: fill(5000, 1)},
		{Name: ".sbat", Data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n")},
		{Name: ".osrel", Data: []byte("ID=keel\n"), Gap: fill(777, 2)},
		{Name: ".cmdline", Data: []byte("console=ttyS0")},
		{Name: ".linux", Data: fill(300001, 3)},
		{Name: ".initrd", Data: fill(100003, 4)},
	}, nil)
}

func TestSignIsDeterministicAndVerifies(t *testing.T) {
	k := newKey(t, "keel test db", nil)
	img := testImage()
	a, err := Sign(img, k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Sign(img, k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("signing the same image with the same key twice gave different bytes")
	}
	if _, err := Verify(a, k.cert); err != nil {
		t.Fatalf("own signature does not verify: %v", err)
	}
	l, err := pecoff.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	if l.CertTable%8 != 0 || l.CertTable+l.CertSize != len(a) || l.CertSize%8 != 0 {
		t.Errorf("certificate table %d bytes at %d in a %d-byte file: want 8-byte aligned, at the end", l.CertSize, l.CertTable, len(a))
	}
	if got := le.Uint32(a[l.ChecksumOffset:]); got != pecoff.Checksum(a, l.ChecksumOffset) {
		t.Errorf("PE checksum %#x, want %#x", got, pecoff.Checksum(a, l.ChecksumOffset))
	}
	if !bytes.Equal(img, withoutHeaderFields(img, a, l)) {
		t.Error("signing changed the image beyond the checksum and certificate directory entry")
	}
}

// withoutHeaderFields is signed's first len(img) bytes with the fields
// signing sets put back as img has them.
func withoutHeaderFields(img, signed []byte, l *pecoff.Layout) []byte {
	b := bytes.Clone(signed[:len(img)])
	copy(b[l.ChecksumOffset:][:4], img[l.ChecksumOffset:])
	copy(b[l.CertDirOffset:][:8], img[l.CertDirOffset:])
	return b
}

func TestVerifyRejects(t *testing.T) {
	k := newKey(t, "keel test db", nil)
	other := newKey(t, "someone else", nil)
	signed, err := Sign(testImage(), k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, other.cert); err == nil {
		t.Error("verified against a certificate that did not sign")
	}
	l, _ := pecoff.Parse(signed)
	for _, s := range l.Sections {
		changed := bytes.Clone(signed)
		changed[s.RawOffset+s.RawSize/2] ^= 1
		if _, err := Verify(changed, k.cert); err == nil {
			t.Errorf("a byte changed in %s went unnoticed", s.Name)
		}
	}
	changed := bytes.Clone(signed)
	changed[0x90] ^= 1 // in the COFF header
	if _, err := Verify(changed, k.cert); err == nil {
		t.Error("a byte changed in the headers went unnoticed")
	}
	unsigned := testImage()
	if _, err := Verify(unsigned, k.cert); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned image: %v, want a not-signed error", err)
	}
}

func TestSignatureListsSigner(t *testing.T) {
	k := newKey(t, "keel test db", nil)
	signed, err := Sign(testImage(), k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := Signatures(signed)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Digest(testImage(), crypto.SHA256)
	if len(sigs) != 1 || !sigs[0].Signer.Equal(k.cert) || sigs[0].Hash != crypto.SHA256 || !bytes.Equal(sigs[0].Digest, want) {
		t.Fatalf("signatures %+v: want one by %s over %x", sigs, k.cert.Subject, want)
	}
	if sigs, err := Signatures(testImage()); err != nil || len(sigs) != 0 {
		t.Errorf("unsigned image: %d signatures, %v", len(sigs), err)
	}
}

func TestSecondSignatureKeepsFirst(t *testing.T) {
	a := newKey(t, "first", nil)
	b := newKey(t, "second", nil)
	once, err := Sign(testImage(), a.key, a.cert)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := Sign(once, b.key, b.cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []keyPair{a, b} {
		if _, err := Verify(twice, k.cert); err != nil {
			t.Errorf("%s: %v", k.cert.Subject, err)
		}
	}
	if sigs, _ := Signatures(twice); len(sigs) != 2 {
		t.Errorf("%d signatures, want 2", len(sigs))
	}
}

func TestSignPadsUnalignedImage(t *testing.T) {
	k := newKey(t, "keel test db", nil)
	img := pecofftest.Image([]pecofftest.Section{{Name: ".text", Data: []byte("code")}}, []byte("odd"))
	signed, err := Sign(img, k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, k.cert); err != nil {
		t.Fatal(err)
	}
	tooltest.Need(t, "sbverify")
	f := write(t, filepath.Join(t.TempDir(), "signed.efi"), signed)
	tooltest.Run(t, "sbverify", "--cert", k.certFile, f)
}

func TestParseRejectsHostileTables(t *testing.T) {
	k := newKey(t, "keel test db", nil)
	signed, err := Sign(testImage(), k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := pecoff.Parse(signed)
	for name, mutate := range map[string]func([]byte){
		"entry longer than table":   func(b []byte) { le.PutUint32(b[l.CertTable:], uint32(l.CertSize+8)) },
		"entry shorter than header": func(b []byte) { le.PutUint32(b[l.CertTable:], 4) },
		"table past the file":       func(b []byte) { le.PutUint32(b[l.CertDirOffset+4:], uint32(l.CertSize+8)) },
		"garbage signature": func(b []byte) {
			for i := l.CertTable + 8; i < len(b); i++ {
				b[i] = 0x30
			}
		},
	} {
		b := bytes.Clone(signed)
		mutate(b)
		if _, err := Signatures(b); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := Verify(b, k.cert); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// The outside tools: Debian's sbsigntool (what the issue checks with),
// and osslsigncode.

func TestSbverifyAcceptsAndRejects(t *testing.T) {
	tooltest.Need(t, "sbverify")
	k := newKey(t, "keel test db", nil)
	other := newKey(t, "someone else", nil)
	dir := t.TempDir()
	signed, err := Sign(testImage(), k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	good := write(t, filepath.Join(dir, "good.efi"), signed)
	tooltest.Run(t, "sbverify", "--cert", k.certFile, good)
	if out, err := exec.Command("sbverify", "--cert", other.certFile, good).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepted a signature checked against another certificate:\n%s", out)
	}
	changed := bytes.Clone(signed)
	l, _ := pecoff.Parse(changed)
	changed[l.Sections[4].RawOffset+1000] ^= 0x40 // in .linux
	bad := write(t, filepath.Join(dir, "bad.efi"), changed)
	if out, err := exec.Command("sbverify", "--cert", k.certFile, bad).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepted an image with a byte changed:\n%s", out)
	}
	// Our verifier agrees with sbverify on all three.
	if _, err := Verify(changed, k.cert); err == nil {
		t.Error("Verify accepted the changed image")
	}
}

func TestSbverifyAcceptsECDSA(t *testing.T) {
	tooltest.Need(t, "sbverify")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t, "keel test ecdsa", key)
	a, err := Sign(testImage(), k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Sign(testImage(), k.key, k.cert)
	if !bytes.Equal(a, b) {
		t.Error("ECDSA signing is not deterministic")
	}
	if _, err := Verify(a, k.cert); err != nil {
		t.Fatal(err)
	}
	f := write(t, filepath.Join(t.TempDir(), "ec.efi"), a)
	tooltest.Run(t, "sbverify", "--cert", k.certFile, f)
}

// TestSameDigestAsSbsign signs the same image with Debian's sbsign and
// checks both tools compute the same Authenticode digest (sbsign's is
// the one in its signature) and each verifier accepts the other's
// signature. The bytes differ: sbsign adds signingTime (the clock) and
// S/MIME capabilities attributes, keel adds SpcSpOpusInfo.
func TestSameDigestAsSbsign(t *testing.T) {
	tooltest.Need(t, "sbsign", "sbverify")
	k := newKey(t, "keel test db", nil)
	dir := t.TempDir()
	img := testImage()
	in := write(t, filepath.Join(dir, "in.efi"), img)
	out := filepath.Join(dir, "sbsign.efi")
	tooltest.Run(t, "sbsign", "--key", k.keyFile, "--cert", k.certFile, "--output", out, in)
	theirs, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := Signatures(theirs)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Digest(img, crypto.SHA256)
	if len(sigs) != 1 || !bytes.Equal(sigs[0].Digest, want) {
		t.Fatalf("sbsign signed digest %x, keel computes %x", sigs[0].Digest, want)
	}
	if _, err := Verify(theirs, k.cert); err != nil {
		t.Errorf("Verify rejects sbsign's signature: %v", err)
	}
	ours, err := Sign(img, k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "sbverify", "--cert", k.certFile, write(t, filepath.Join(dir, "keel.efi"), ours))
	if bytes.Equal(ours, theirs) {
		t.Error("identical to sbsign's output: expected its signingTime attribute to differ")
	}
}

// TestOsslsigncodeDigest checks osslsigncode reads keel's signature and
// computes the same digest for an image without gaps between sections.
// (Where the stub's symbol table leaves a gap, osslsigncode 2.5 hashes the
// file as one run and disagrees with the specification, EDK2 and sbsign;
// TestOsslsigncodeDiffersOnGaps records that.)
func TestOsslsigncodeDigest(t *testing.T) {
	tooltest.Need(t, "osslsigncode")
	k := newKey(t, "keel test db", nil)
	img := pecofftest.Image([]pecofftest.Section{
		{Name: ".text", Data: bytes.Repeat([]byte{0xc3}, 3000)},
		{Name: ".linux", Data: bytes.Repeat([]byte("kernel"), 5000)},
	}, nil)
	signed, err := Sign(img, k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	current, calculated := osslsigncodeDigests(t, write(t, filepath.Join(t.TempDir(), "s.efi"), signed), k)
	want, _ := Digest(img, crypto.SHA256)
	if current != hex.EncodeToString(want) || calculated != current {
		t.Errorf("osslsigncode: signed digest %s, calculated %s; keel %x", current, calculated, want)
	}
}

func TestOsslsigncodeDiffersOnGaps(t *testing.T) {
	tooltest.Need(t, "osslsigncode")
	k := newKey(t, "keel test db", nil)
	signed, err := Sign(testImage(), k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	current, calculated := osslsigncodeDigests(t, write(t, filepath.Join(t.TempDir(), "s.efi"), signed), k)
	want, _ := Digest(testImage(), crypto.SHA256)
	if current != hex.EncodeToString(want) {
		t.Errorf("osslsigncode reads signed digest %s, keel signed %x", current, want)
	}
	if calculated == current {
		t.Log("osslsigncode now hashes images with gaps as the specification does")
	}
}

var osslDigest = regexp.MustCompile(`(Current|Calculated) message digest\s*:\s*([0-9A-F]+)`)

func osslsigncodeDigests(t *testing.T, file string, k keyPair) (current, calculated string) {
	t.Helper()
	out, _ := exec.Command("osslsigncode", "verify", "-CAfile", k.certFile, "-in", file).CombinedOutput()
	for _, m := range osslDigest.FindAllStringSubmatch(string(out), -1) {
		if m[1] == "Current" {
			current = strings.ToLower(m[2])
		} else {
			calculated = strings.ToLower(m[2])
		}
	}
	if current == "" || calculated == "" {
		t.Fatalf("osslsigncode printed no digests:\n%s", out)
	}
	return current, calculated
}

func BenchmarkSign(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cert, err := sbkeys.SelfSigned(key, "bench", start, start.AddDate(1, 0, 0))
	if err != nil {
		b.Fatal(err)
	}
	img := pecofftest.Image([]pecofftest.Section{{Name: ".linux", Data: make([]byte, 16<<20)}}, nil)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := Sign(img, key, cert); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSignatures feeds the certificate table reader damaged tables.
func FuzzSignatures(f *testing.F) {
	k := newKey(f, "fuzz", nil)
	img := pecofftest.Image([]pecofftest.Section{{Name: ".text", Data: []byte{0xc3}}}, nil)
	signed, err := Sign(img, k.key, k.cert)
	if err != nil {
		f.Fatal(err)
	}
	l, _ := pecoff.Parse(signed)
	f.Add(signed[l.CertTable:])
	f.Fuzz(func(t *testing.T, table []byte) {
		b := append(bytes.Clone(signed[:l.CertTable]), table...)
		le.PutUint32(b[l.CertDirOffset+4:], uint32(len(table)))
		for _, s := range must(Signatures(b)) {
			s.Verify(b, k.cert)
		}
	})
}

func must(s []Signature, _ error) []Signature { return s }
