// Package sbkeys makes and loads Secure Boot keys: the PK, KEK, db
// hierarchy `keel keys generate` writes (RSA keys, self-signed X.509
// certificates, the EFI signature lists and the signed .auth updates
// that enroll them in setup mode), and the KEY/CERT PEM files a build
// signs with.
package sbkeys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/keelos/keel/internal/efivar"
)

// KeyPair is a signing key and its certificate.
type KeyPair struct {
	Key  crypto.Signer
	Cert *x509.Certificate
}

// Hierarchy is a Secure Boot key set: the platform key (PK) signs
// updates of PK and KEK, the key exchange key (KEK) signs updates of db,
// and db's key signs the images firmware will start.
type Hierarchy struct {
	PK, KEK, DB KeyPair
}

// Options says what Generate makes.
type Options struct {
	// Name prefixes the certificates' common names ("NAME PK", "NAME
	// KEK", "NAME db").
	Name string
	Bits int // RSA key size: 2048, 3072 or 4096
	// NotBefore and NotAfter bound the certificates' validity (firmware
	// ignores it; other verifiers may not).
	NotBefore, NotAfter time.Time
	Rand                io.Reader // for the keys: crypto/rand.Reader
}

// Generate makes a new hierarchy. Its keys are random; given the keys,
// the certificates are not (serials derive from the public key).
func Generate(o Options) (*Hierarchy, error) {
	if o.Name == "" {
		return nil, errors.New("keys: a name for the certificates is needed")
	}
	switch o.Bits {
	case 2048, 3072, 4096:
	default:
		return nil, fmt.Errorf("keys: RSA size %d: want 2048, 3072 or 4096", o.Bits)
	}
	if !o.NotAfter.After(o.NotBefore) {
		return nil, errors.New("keys: the validity ends before it starts")
	}
	var h Hierarchy
	for _, k := range []struct {
		kp   *KeyPair
		role string
	}{{&h.PK, "PK"}, {&h.KEK, "KEK"}, {&h.DB, "db"}} {
		key, err := rsa.GenerateKey(o.Rand, o.Bits)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", k.role, err)
		}
		cert, err := SelfSigned(key, o.Name+" "+k.role, o.NotBefore, o.NotAfter)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", k.role, err)
		}
		*k.kp = KeyPair{key, cert}
	}
	return &h, nil
}

// SelfSigned is a self-signed certificate for key (RSA, or ECDSA) with
// the common name cn. The serial number is derived from the public key,
// so the same key, name and validity give the same certificate.
func SelfSigned(key crypto.Signer, cn string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sum[:16]), // positive, at most 128 bits
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          sum[:20],
	}
	// RSA PKCS #1 v1.5 reads no randomness, and a software ECDSA key
	// given none signs deterministically (RFC 6979).
	var random io.Reader = noRandom{}
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		random = nil
	}
	der, err := x509.CreateCertificate(random, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// noRandom is the randomness given to signing that must not use any:
// reading it is an error, not a silently different certificate.
type noRandom struct{}

func (noRandom) Read([]byte) (int, error) {
	return 0, errors.New("signing asked for randomness: the key cannot sign reproducibly")
}

// Owner is the signature owner GUID keel puts on cert's signature list
// entries: derived from the certificate, so the same certificate always
// gives the same bytes.
func Owner(cert *x509.Certificate) efivar.GUID {
	sum := sha256.Sum256(cert.Raw)
	u := [16]byte(sum[:16])
	u[6] = u[6]&0x0f | 0x80 // RFC 9562 version 8: vendor-specific
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return efivar.FromUUID(u)
}

// SignatureList is cert's EFI signature list, as PK, KEK or db holds it.
func SignatureList(cert *x509.Certificate) []byte {
	return efivar.SignatureList(efivar.CertX509, Owner(cert), cert.Raw)
}

// Auth is the signed .auth updates that enroll h from setup mode: PK and
// KEK signed by PK, db by KEK. Their timestamp is the PK certificate's
// NotBefore, so the same hierarchy gives the same bytes.
func (h *Hierarchy) Auth() (pk, kek, db []byte, err error) {
	t := h.PK.Cert.NotBefore
	up := func(name string, guid efivar.GUID, cert *x509.Certificate, by KeyPair) ([]byte, error) {
		u := efivar.Update{Name: name, GUID: guid, Attributes: efivar.SecureBootAttributes, Time: t, Data: SignatureList(cert)}
		return u.Sign(by.Key, by.Cert)
	}
	if pk, err = up("PK", efivar.GlobalVariable, h.PK.Cert, h.PK); err != nil {
		return nil, nil, nil, err
	}
	if kek, err = up("KEK", efivar.GlobalVariable, h.KEK.Cert, h.PK); err != nil {
		return nil, nil, nil, err
	}
	if db, err = up("db", efivar.ImageSecurityDatabase, h.DB.Cert, h.KEK); err != nil {
		return nil, nil, nil, err
	}
	return pk, kek, db, nil
}

// Files of a key directory, per role (PK, KEK, db): NAME.key (PKCS #8
// PEM, 0600), NAME.crt (PEM), NAME.esl (signature list), NAME.auth.
var roles = []string{"PK", "KEK", "db"}

func (h *Hierarchy) pair(role string) KeyPair {
	switch role {
	case "PK":
		return h.PK
	case "KEK":
		return h.KEK
	}
	return h.DB
}

// Write puts h in dir, which is created if missing. No existing file is
// replaced: keys already there are not lost.
func (h *Hierarchy) Write(dir string) error {
	pk, kek, db, err := h.Auth()
	if err != nil {
		return err
	}
	auth := map[string][]byte{"PK": pk, "KEK": kek, "db": db}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	for _, role := range roles {
		kp := h.pair(role)
		key, err := x509.MarshalPKCS8PrivateKey(kp.Key)
		if err != nil {
			return fmt.Errorf("keys: %s: %w", role, err)
		}
		files := []struct {
			ext  string
			data []byte
			mode os.FileMode
		}{
			{".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600},
			{".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.Cert.Raw}), 0o644},
			{".esl", SignatureList(kp.Cert), 0o644},
			{".auth", auth[role], 0o644},
		}
		for _, f := range files {
			if err := writeNew(filepath.Join(dir, role+f.ext), f.data, f.mode); err != nil {
				return fmt.Errorf("keys: %w", err)
			}
		}
	}
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; keys are never overwritten: use another directory", path)
		}
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadDir loads the hierarchy Write wrote to dir.
func ReadDir(dir string) (*Hierarchy, error) {
	var h Hierarchy
	for _, role := range roles {
		kp, err := LoadKeyPair(filepath.Join(dir, role+".key"), filepath.Join(dir, role+".crt"))
		if err != nil {
			return nil, err
		}
		switch role {
		case "PK":
			h.PK = kp
		case "KEK":
			h.KEK = kp
		default:
			h.DB = kp
		}
	}
	return &h, nil
}

// maxPEM bounds a key or certificate file.
const maxPEM = 1 << 20

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxPEM {
		return nil, fmt.Errorf("%s: larger than %d bytes, not a key or certificate file", path, maxPEM)
	}
	return b, nil
}

// LoadKeyPair reads a KEY file and a CERT file (see ParseKey and
// ParseCertificate) and checks that they belong together.
func LoadKeyPair(keyFile, certFile string) (KeyPair, error) {
	kb, err := readBounded(keyFile)
	if err != nil {
		return KeyPair{}, fmt.Errorf("signing key: %w", err)
	}
	key, err := ParseKey(kb)
	if err != nil {
		return KeyPair{}, fmt.Errorf("signing key %s: %w", keyFile, err)
	}
	cb, err := readBounded(certFile)
	if err != nil {
		return KeyPair{}, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := ParseCertificate(cb)
	if err != nil {
		return KeyPair{}, fmt.Errorf("signing certificate %s: %w", certFile, err)
	}
	if k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(cert.PublicKey) {
		return KeyPair{}, fmt.Errorf("signing key %s does not belong to certificate %s (%s)", keyFile, certFile, cert.Subject)
	}
	return KeyPair{key, cert}, nil
}

// LoadCertificate reads a certificate file (see ParseCertificate).
func LoadCertificate(path string) (*x509.Certificate, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// ParseKey reads an unencrypted PEM private key: RSA (PKCS #1 or PKCS #8,
// at least 2048 bits) or ECDSA P-256 (SEC 1 or PKCS #8).
func ParseKey(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM private key found (want RSA or EC PRIVATE KEY, or PRIVATE KEY)")
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted: decrypt it (openssl pkey) or sign through a signing command")
		default:
			continue // EC PARAMETERS and the like
		}
		if err != nil {
			return nil, err
		}
		if _, ok := block.Headers["Proc-Type"]; ok {
			return nil, errors.New("the private key is encrypted: decrypt it (openssl pkey) or sign through a signing command")
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("RSA key of %d bits: want at least 2048", k.N.BitLen())
			}
			return k, nil
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P256() {
				return nil, fmt.Errorf("ECDSA key on %s: want P-256", k.Curve.Params().Name)
			}
			return k, nil
		default:
			return nil, fmt.Errorf("key type %T: want RSA or ECDSA P-256", key)
		}
	}
}

// ParseCertificate reads an X.509 certificate, PEM (the first
// CERTIFICATE block) or DER.
func ParseCertificate(b []byte) (*x509.Certificate, error) {
	if !bytes.HasPrefix(b, []byte{0x30}) { // not DER: PEM
		for {
			var block *pem.Block
			block, b = pem.Decode(b)
			if block == nil {
				return nil, errors.New("no PEM CERTIFICATE found")
			}
			if block.Type == "CERTIFICATE" {
				b = block.Bytes
				break
			}
		}
	}
	return x509.ParseCertificate(b)
}
