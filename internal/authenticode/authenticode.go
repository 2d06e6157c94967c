// Package authenticode signs PE/COFF images (keel's UKIs) the way UEFI
// Secure Boot checks them, and reads the signatures back.
//
// The digest is the one the Authenticode PE specification defines and
// EDK2's DxeImageVerificationLib computes: the headers without the
// checksum field and the certificate table's directory entry, then each
// section's raw data in file order, then whatever follows — counted, as
// the specification says, from the offset equal to the bytes hashed so
// far up to the certificate table. (With a gap between sections, as
// keel's UKIs have where the stub's COFF symbol table sits, that last
// range is not the bytes after the last section; sbsign and EDK2 agree on
// this, osslsigncode 2.5 does not.)
//
// The signature is a PKCS #7 SignedData over an SpcIndirectDataContent,
// with the contentType, SpcSpOpusInfo and messageDigest attributes and no
// signing time, stored as a WIN_CERTIFICATE at the end of the file.
package authenticode

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/keelos/keel/internal/pecoff"
	"github.com/keelos/keel/internal/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidSpcIndirectData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcSpOpusInfo   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
)

const (
	winCertRevision   = 0x0200
	winCertPKCS7      = 0x0002 // WIN_CERT_TYPE_PKCS_SIGNED_DATA
	winCertHeaderSize = 8
	// certAlign is the alignment of the certificate table and of each
	// entry in it.
	certAlign = 8
)

var le = binary.LittleEndian

// Digest is img's Authenticode digest with h.
func Digest(img []byte, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("authenticode: digest %v not available", h)
	}
	l, err := pecoff.Parse(img)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	return digest(img, l, h), nil
}

func digest(img []byte, l *pecoff.Layout, hash crypto.Hash) []byte {
	h := hash.New()
	h.Write(img[:l.ChecksumOffset])
	h.Write(img[l.ChecksumOffset+4 : l.CertDirOffset])
	h.Write(img[l.CertDirOffset+8 : l.SizeOfHeaders])
	secs := slices.Clone(l.Sections)
	slices.SortStableFunc(secs, func(a, b pecoff.Section) int { return int(a.RawOffset) - int(b.RawOffset) })
	sum := l.SizeOfHeaders
	for _, s := range secs {
		if s.RawSize == 0 {
			continue
		}
		h.Write(img[s.RawOffset:][:s.RawSize])
		sum += int(s.RawSize)
	}
	if end := len(img) - l.CertSize; end > sum {
		h.Write(img[sum:end])
	}
	return h.Sum(nil)
}

// Sign returns img with an Authenticode signature by signer, whose
// certificate is cert, appended to its certificate table (signatures
// already there stay valid: the digest does not cover the table). The
// digest is SHA-256. The same image, key and certificate give the same
// bytes with an RSA key, or a software ECDSA key (RFC 6979).
func Sign(img []byte, signer crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	l, err := pecoff.Parse(img)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	var out []byte
	if l.CertSize != 0 {
		if l.CertTable+l.CertSize != len(img) || l.CertTable%certAlign != 0 {
			return nil, errors.New("authenticode: the image's certificate table is not 8-byte aligned at its end; cannot add a signature")
		}
		out = slices.Clone(img)
	} else {
		// The table starts 8-byte aligned; the padding before it is
		// part of the image, and so of the digest.
		out = make([]byte, alignUp(len(img), certAlign))
		copy(out, img)
	}
	sum := digest(out, l, crypto.SHA256)

	content, err := indirectData(crypto.SHA256, sum)
	if err != nil {
		return nil, err
	}
	sd, err := pkcs7.Sign(pkcs7.Request{
		ContentType: oidSpcIndirectData,
		Content:     content,
		Signed:      contentsOctets(content),
		Attributes:  true,
		Extra:       []pkcs7.Attribute{{Type: oidSpcSpOpusInfo, Value: []byte{0x30, 0x00}}},
		Hash:        crypto.SHA256,
		Signer:      signer,
		Certificate: cert,
	})
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	p7 := pkcs7.WrapContentInfo(sd)

	tableStart := len(img) - l.CertSize
	if l.CertSize == 0 {
		tableStart = len(out)
	}
	entry := make([]byte, alignUp(winCertHeaderSize+len(p7), certAlign))
	le.PutUint32(entry[0:], uint32(winCertHeaderSize+len(p7)))
	le.PutUint16(entry[4:], winCertRevision)
	le.PutUint16(entry[6:], winCertPKCS7)
	copy(entry[winCertHeaderSize:], p7)
	out = append(out, entry...)
	if len(out) > 0xffffffff {
		return nil, errors.New("authenticode: signed image larger than 4 GiB")
	}
	le.PutUint32(out[l.CertDirOffset:], uint32(tableStart))
	le.PutUint32(out[l.CertDirOffset+4:], uint32(len(out)-tableStart))
	le.PutUint32(out[l.ChecksumOffset:], 0)
	le.PutUint32(out[l.ChecksumOffset:], pecoff.Checksum(out, l.ChecksumOffset))
	return out, nil
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// indirectData is the DER SpcIndirectDataContent for a PE image digest,
// encoded as sbsign, pesign and signtool encode it (an empty flags bit
// string, the "<<<Obsolete>>>" file link).
func indirectData(h crypto.Hash, sum []byte) ([]byte, error) {
	obsolete := []byte{}
	for _, r := range "<<<Obsolete>>>" {
		obsolete = append(obsolete, 0, byte(r)) // BMPString: UCS-2 big-endian
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidSpcPEImageData)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1BitString(nil)
				b.AddASN1(ctx(0), func(b *cryptobyte.Builder) {
					b.AddASN1(ctx(2), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(obsolete) })
					})
				})
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(pkcs7.HashOID(h))
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(sum)
		})
	})
	return b.Bytes()
}

func ctx(n uint8) cbasn1.Tag { return cbasn1.Tag(n).ContextSpecific().Constructed() }

// contentsOctets is a DER element's value, without tag and length.
func contentsOctets(der []byte) []byte {
	s := cryptobyte.String(der)
	var v cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&v, &tag) {
		return nil
	}
	return v
}

// Signature is one Authenticode signature of an image.
type Signature struct {
	Hash   crypto.Hash // the image digest's algorithm
	Digest []byte      // the image digest it signs
	// Signer is the signing certificate; Certificates all those the
	// signature carries (the signer's and any intermediates).
	Signer       *x509.Certificate
	Certificates []*x509.Certificate
	data         *pkcs7.SignedData
}

// Signatures lists img's Authenticode signatures, in table order. An
// unsigned image has none.
func Signatures(img []byte) ([]Signature, error) {
	l, err := pecoff.Parse(img)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	var sigs []Signature
	table := img[l.CertTable:][:l.CertSize]
	for off := 0; off < len(table); {
		if len(table)-off < winCertHeaderSize {
			return nil, fmt.Errorf("authenticode: certificate table entry at %d is truncated", off)
		}
		n := int(le.Uint32(table[off:]))
		if n < winCertHeaderSize || n > len(table)-off {
			return nil, fmt.Errorf("authenticode: certificate table entry at %d has length %d, outside the table", off, n)
		}
		rev, typ := le.Uint16(table[off+4:]), le.Uint16(table[off+6:])
		if rev == winCertRevision && typ == winCertPKCS7 {
			s, err := parseSignature(table[off+winCertHeaderSize : off+n])
			if err != nil {
				return nil, fmt.Errorf("authenticode: signature %d: %w", len(sigs)+1, err)
			}
			sigs = append(sigs, *s)
		}
		off += alignUp(n, certAlign)
	}
	return sigs, nil
}

func parseSignature(der []byte) (*Signature, error) {
	sd, err := pkcs7.Parse(der)
	if err != nil {
		return nil, err
	}
	if !sd.ContentType.Equal(oidSpcIndirectData) || sd.ContentOctets == nil {
		return nil, fmt.Errorf("content type %v, want an embedded SpcIndirectDataContent", sd.ContentType)
	}
	if len(sd.Signers) != 1 {
		return nil, fmt.Errorf("%d signers, want 1", len(sd.Signers))
	}
	s := &Signature{Certificates: sd.Certificates, data: sd, Signer: sd.Certificate(&sd.Signers[0])}
	if s.Signer == nil {
		return nil, errors.New("the signer's certificate is not included")
	}
	// SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue,
	//   messageDigest DigestInfo }, DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
	in := cryptobyte.String(sd.ContentOctets)
	var data, info, alg, sum cryptobyte.String
	var typ, hashOID asn1.ObjectIdentifier
	if !in.ReadASN1(&data, cbasn1.SEQUENCE) || !data.ReadASN1ObjectIdentifier(&typ) ||
		!in.ReadASN1(&info, cbasn1.SEQUENCE) || !in.Empty() ||
		!info.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&hashOID) ||
		!info.ReadASN1(&sum, cbasn1.OCTET_STRING) || !info.Empty() {
		return nil, errors.New("malformed SpcIndirectDataContent")
	}
	if !typ.Equal(oidSpcPEImageData) {
		return nil, fmt.Errorf("signed data type %v, want a PE image", typ)
	}
	if s.Hash = pkcs7.HashFromOID(hashOID); s.Hash == 0 {
		return nil, fmt.Errorf("image digest algorithm %v not supported", hashOID)
	}
	if len(sum) != s.Hash.Size() {
		return nil, fmt.Errorf("image digest is %d bytes, want %d", len(sum), s.Hash.Size())
	}
	s.Digest = sum
	return s, nil
}

// Verify checks that s signs img and that its signer is trusted or was
// issued (through certificates s carries) by trusted. As UEFI firmware
// does, it checks signatures only, not validity dates or key usages.
func (s *Signature) Verify(img []byte, trusted *x509.Certificate) error {
	got, err := Digest(img, s.Hash)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, s.Digest) {
		return errors.New("authenticode: the image does not match its signature (changed after signing)")
	}
	signer, err := s.data.VerifySignature(&s.data.Signers[0], s.data.ContentOctets)
	if err != nil {
		return fmt.Errorf("authenticode: %w", err)
	}
	if !s.data.Chains(signer, trusted) {
		return fmt.Errorf("authenticode: signed by %q, which %q does not vouch for", signer.Subject, trusted.Subject)
	}
	return nil
}

// Verify returns the first of img's signatures that verifies against
// trusted (see Signature.Verify), or why none does.
func Verify(img []byte, trusted *x509.Certificate) (*Signature, error) {
	sigs, err := Signatures(img)
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		return nil, errors.New("authenticode: the image is not signed")
	}
	var errs []error
	for i := range sigs {
		err := sigs[i].Verify(img, trusted)
		if err == nil {
			return &sigs[i], nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
