package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/keelos/keel/internal/authenticode"
)

// signEFI returns img, an EFI binary the build wrote, Authenticode-signed
// with the build's signing key, or img itself when the build signs
// nothing. Signing is deterministic (no signing time; RSA PKCS #1 v1.5 or
// RFC 6979 ECDSA), so the same inputs and key give the same bytes.
func (b *builder) signEFI(name string, img []byte) ([]byte, error) {
	if b.opts.SignKey == nil {
		return img, nil
	}
	start := time.Now()
	signed, err := authenticode.Sign(img, b.opts.SignKey, b.opts.SignCert)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", name, err)
	}
	b.logf("signed %s (%s) for Secure Boot as %s in %.2fs", name, humanSize(int64(len(img))), b.opts.SignCert.Subject, time.Since(start).Seconds())
	return signed, nil
}

// signingCertSHA256 is the hex SHA-256 of the signing certificate (DER),
// as the SBOM records it, or "" when the build signs nothing.
func (b *builder) signingCertSHA256() string {
	if b.opts.SignCert == nil {
		return ""
	}
	sum := sha256.Sum256(b.opts.SignCert.Raw)
	return hex.EncodeToString(sum[:])
}
