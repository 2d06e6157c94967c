// Package pkcs7 writes and reads the PKCS #7 SignedData (RFC 2315) that
// UEFI Secure Boot uses twice: inside an Authenticode signature (content
// type SpcIndirectDataContent, embedded) and in an authenticated
// variable's EFI_VARIABLE_AUTHENTICATION_2 (type data, detached).
//
// The general-purpose Go libraries (go.mozilla.org/pkcs7 and its forks)
// do not fit: they embed any content as an OCTET STRING, digest the whole
// encoding rather than its contents octets as Authenticode needs, and add
// a signing-time attribute from the clock, which breaks reproducible
// output. What is written here is exactly one signer, one certificate set
// and a caller-chosen attribute set, encoded in DER; with RSA PKCS #1
// v1.5 (deterministic) the same inputs give the same bytes.
package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	OIDData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSA           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
)

// digestOIDs are the digest algorithms read and written.
var digestOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
	crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
	crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
}

// HashOID is the AlgorithmIdentifier OID of h, or nil if unsupported.
func HashOID(h crypto.Hash) asn1.ObjectIdentifier { return digestOIDs[h] }

// HashFromOID is the digest algorithm oid names, or 0.
func HashFromOID(oid asn1.ObjectIdentifier) crypto.Hash {
	for h, o := range digestOIDs {
		if o.Equal(oid) {
			return h
		}
	}
	return 0
}

// Attribute is an authenticated attribute: its type and the DER of its
// single value.
type Attribute struct {
	Type  asn1.ObjectIdentifier
	Value []byte
}

// Request says what to sign.
type Request struct {
	ContentType asn1.ObjectIdentifier
	// Content is the DER encoding embedded as the SignedData's content,
	// or nil to leave it out (a detached signature).
	Content []byte
	// Signed are the bytes the message digest covers: the contents octets
	// of Content (its value without tag and length) or the detached data.
	Signed []byte
	// Attributes, when true, signs authenticated attributes
	// (contentType, messageDigest, and Extra) instead of the bare digest.
	Attributes bool
	Extra      []Attribute
	Hash       crypto.Hash
	Signer     crypto.Signer
	// Certificate is the signer's; it is included in the SignedData.
	Certificate *x509.Certificate
}

// Sign returns the DER SignedData (without the ContentInfo around it:
// see WrapContentInfo).
func Sign(r Request) ([]byte, error) {
	hashOID := digestOIDs[r.Hash]
	if hashOID == nil || !r.Hash.Available() {
		return nil, fmt.Errorf("digest algorithm %v not supported", r.Hash)
	}
	if r.Certificate == nil || r.Signer == nil {
		return nil, errors.New("a signer and its certificate are both needed")
	}
	if !samePublicKey(r.Signer.Public(), r.Certificate.PublicKey) {
		return nil, errors.New("the private key does not belong to the certificate")
	}
	sigAlg, err := signatureAlgorithm(r.Signer.Public(), r.Hash)
	if err != nil {
		return nil, err
	}

	h := r.Hash.New()
	h.Write(r.Signed)
	digest := h.Sum(nil)
	var attrs []byte // the contents of the SET OF Attribute, DER-sorted
	if r.Attributes {
		list := append([]Attribute{
			{oidContentType, mustMarshal(r.ContentType)},
			{oidMessageDigest, mustMarshal(digest)},
		}, r.Extra...)
		attrs = encodeAttributes(list)
		h := r.Hash.New()
		h.Write(tlv(cbasn1.SET, attrs)) // signed as a SET, stored [0] IMPLICIT
		digest = h.Sum(nil)
	}
	sig, err := r.Signer.Sign(signingRand(r.Signer), digest, r.Hash)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}

	algID := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, null bool) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			if null {
				b.AddASN1NULL()
			}
		})
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { algID(b, hashOID, true) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(r.ContentType)
			if r.Content != nil {
				b.AddASN1(ctx0, func(b *cryptobyte.Builder) { b.AddBytes(r.Content) })
			}
		})
		b.AddASN1(ctx0, func(b *cryptobyte.Builder) { b.AddBytes(r.Certificate.Raw) })
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(r.Certificate.RawIssuer)
					b.AddASN1BigInt(r.Certificate.SerialNumber)
				})
				algID(b, hashOID, true)
				if attrs != nil {
					b.AddASN1(ctx0, func(b *cryptobyte.Builder) { b.AddBytes(attrs) })
				}
				algID(b, sigAlg.oid, sigAlg.null)
				b.AddASN1OctetString(sig)
			})
		})
	})
	return b.Bytes()
}

// WrapContentInfo puts a SignedData in the ContentInfo that Authenticode
// stores (authenticated variables store the bare SignedData).
func WrapContentInfo(signedData []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(ctx0, func(b *cryptobyte.Builder) { b.AddBytes(signedData) })
	})
	return b.BytesOrPanic()
}

// The context-specific tags: content [0] EXPLICIT, certificates and
// authenticated attributes [0] IMPLICIT, CRLs and unauthenticated
// attributes [1] IMPLICIT (all constructed).
var (
	ctx0 = cbasn1.Tag(0).ContextSpecific().Constructed()
	ctx1 = cbasn1.Tag(1).ContextSpecific().Constructed()
)

type sigAlgorithm struct {
	oid  asn1.ObjectIdentifier
	null bool // parameters NULL (RSA) or absent (ECDSA)
}

func signatureAlgorithm(pub crypto.PublicKey, h crypto.Hash) (sigAlgorithm, error) {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return sigAlgorithm{oidRSA, true}, nil
	case *ecdsa.PublicKey:
		switch h {
		case crypto.SHA256:
			return sigAlgorithm{oidECDSASHA256, false}, nil
		case crypto.SHA384:
			return sigAlgorithm{oidECDSASHA384, false}, nil
		}
		return sigAlgorithm{}, fmt.Errorf("ECDSA with %v not supported", h)
	default:
		return sigAlgorithm{}, fmt.Errorf("key type %T not supported (want RSA or ECDSA)", pub)
	}
}

// signingRand is the randomness Sign passes the signer. RSA PKCS #1 v1.5
// ignores it; a software ECDSA key given none signs deterministically
// (RFC 6979), so the output stays reproducible. Other signers (an HSM,
// say) get real randomness, should they need it.
func signingRand(s crypto.Signer) io.Reader {
	if _, ok := s.(*ecdsa.PrivateKey); ok {
		return nil
	}
	return rand.Reader
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err) // only OIDs and byte slices come here
	}
	return b
}

// encodeAttributes is the contents of a DER SET OF Attribute: each
// encoded, sorted by encoding.
func encodeAttributes(list []Attribute) []byte {
	enc := make([][]byte, len(list))
	for i, a := range list {
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(a.Type)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(a.Value) })
		})
		enc[i] = b.BytesOrPanic()
	}
	slices.SortFunc(enc, bytes.Compare)
	return bytes.Join(enc, nil)
}

func tlv(tag cbasn1.Tag, contents []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(contents) })
	return b.BytesOrPanic()
}

// SignedData is a parsed SignedData.
type SignedData struct {
	ContentType asn1.ObjectIdentifier
	// Content is the embedded content's full DER encoding (nil when
	// detached); ContentOctets its contents octets, what the digest covers.
	Content, ContentOctets []byte
	Certificates           []*x509.Certificate
	Signers                []SignerInfo
}

// SignerInfo is one signer of a SignedData.
type SignerInfo struct {
	Issuer       []byte // DER Name
	SerialNumber *big.Int
	Hash         crypto.Hash
	// Attributes are the authenticated attributes; RawAttributes the
	// contents of their SET, nil when there are none.
	Attributes    []Attribute
	RawAttributes []byte
	SignatureOID  asn1.ObjectIdentifier
	Signature     []byte
}

// Parse reads a DER SignedData, bare or inside a ContentInfo.
func Parse(der []byte) (*SignedData, error) {
	s := cryptobyte.String(der)
	var outer cryptobyte.String
	if !s.ReadASN1(&outer, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("pkcs7: not a DER SEQUENCE")
	}
	if outer.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) { // a ContentInfo
		var oid asn1.ObjectIdentifier
		var inner cryptobyte.String
		if !outer.ReadASN1ObjectIdentifier(&oid) || !outer.ReadASN1(&inner, ctx0) || !outer.Empty() {
			return nil, errors.New("pkcs7: malformed ContentInfo")
		}
		if !oid.Equal(oidSignedData) {
			return nil, fmt.Errorf("pkcs7: content type %v, want signedData", oid)
		}
		if !inner.ReadASN1(&outer, cbasn1.SEQUENCE) || !inner.Empty() {
			return nil, errors.New("pkcs7: malformed SignedData")
		}
	}
	sd := &SignedData{}
	var version int64
	var digestAlgs, contentInfo, signerInfos cryptobyte.String
	if !outer.ReadASN1Integer(&version) || !outer.ReadASN1(&digestAlgs, cbasn1.SET) ||
		!outer.ReadASN1(&contentInfo, cbasn1.SEQUENCE) {
		return nil, errors.New("pkcs7: malformed SignedData")
	}
	if version != 1 {
		return nil, fmt.Errorf("pkcs7: SignedData version %d, want 1", version)
	}
	if !contentInfo.ReadASN1ObjectIdentifier(&sd.ContentType) {
		return nil, errors.New("pkcs7: malformed content info")
	}
	if !contentInfo.Empty() {
		var content cryptobyte.String
		if !contentInfo.ReadASN1(&content, ctx0) || !contentInfo.Empty() {
			return nil, errors.New("pkcs7: malformed content")
		}
		var tag cbasn1.Tag
		var octets cryptobyte.String
		sd.Content = append([]byte(nil), content...)
		if !content.ReadAnyASN1(&octets, &tag) || !content.Empty() {
			return nil, errors.New("pkcs7: malformed content")
		}
		sd.ContentOctets = octets
	}
	if outer.PeekASN1Tag(ctx0) {
		var certs cryptobyte.String
		if !outer.ReadASN1(&certs, ctx0) {
			return nil, errors.New("pkcs7: malformed certificates")
		}
		for !certs.Empty() {
			var c cryptobyte.String
			if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
				return nil, errors.New("pkcs7: malformed certificate")
			}
			cert, err := x509.ParseCertificate(c)
			if err != nil {
				return nil, fmt.Errorf("pkcs7: certificate: %w", err)
			}
			sd.Certificates = append(sd.Certificates, cert)
		}
	}
	if outer.PeekASN1Tag(ctx1) && !outer.SkipASN1(ctx1) { // CRLs: not used
		return nil, errors.New("pkcs7: malformed CRLs")
	}
	if !outer.ReadASN1(&signerInfos, cbasn1.SET) || !outer.Empty() {
		return nil, errors.New("pkcs7: malformed signer infos")
	}
	for !signerInfos.Empty() {
		si, err := parseSignerInfo(&signerInfos)
		if err != nil {
			return nil, err
		}
		sd.Signers = append(sd.Signers, si)
	}
	if len(sd.Signers) == 0 {
		return nil, errors.New("pkcs7: no signer")
	}
	return sd, nil
}

func parseSignerInfo(s *cryptobyte.String) (SignerInfo, error) {
	var si SignerInfo
	var in, ias, issuer, digestAlg, sigAlg cryptobyte.String
	var version int64
	var hashOID asn1.ObjectIdentifier
	si.SerialNumber = new(big.Int)
	bad := errors.New("pkcs7: malformed signer info")
	if !s.ReadASN1(&in, cbasn1.SEQUENCE) || !in.ReadASN1Integer(&version) ||
		!in.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!ias.ReadASN1Integer(si.SerialNumber) || !ias.Empty() ||
		!in.ReadASN1(&digestAlg, cbasn1.SEQUENCE) || !digestAlg.ReadASN1ObjectIdentifier(&hashOID) {
		return si, bad
	}
	if version != 1 {
		return si, fmt.Errorf("pkcs7: signer info version %d, want 1", version)
	}
	si.Issuer = issuer
	if si.Hash = HashFromOID(hashOID); si.Hash == 0 {
		return si, fmt.Errorf("pkcs7: digest algorithm %v not supported", hashOID)
	}
	if in.PeekASN1Tag(ctx0) {
		var attrs cryptobyte.String
		if !in.ReadASN1(&attrs, ctx0) {
			return si, bad
		}
		si.RawAttributes = append([]byte{}, attrs...)
		for !attrs.Empty() {
			var a, values, value cryptobyte.String
			var typ asn1.ObjectIdentifier
			if !attrs.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&typ) ||
				!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
				return si, bad
			}
			var tag cbasn1.Tag
			if !values.ReadAnyASN1Element(&value, &tag) {
				return si, bad
			}
			si.Attributes = append(si.Attributes, Attribute{typ, value})
		}
	}
	if !in.ReadASN1(&sigAlg, cbasn1.SEQUENCE) || !sigAlg.ReadASN1ObjectIdentifier(&si.SignatureOID) {
		return si, bad
	}
	var sig cryptobyte.String
	if !in.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return si, bad
	}
	si.Signature = sig
	if in.PeekASN1Tag(ctx1) && !in.SkipASN1(ctx1) { // unauthenticated: timestamps, not used
		return si, bad
	}
	if !in.Empty() {
		return si, bad
	}
	return si, nil
}

// Attribute returns the value of the authenticated attribute typ, or nil.
func (si *SignerInfo) Attribute(typ asn1.ObjectIdentifier) []byte {
	for _, a := range si.Attributes {
		if a.Type.Equal(typ) {
			return a.Value
		}
	}
	return nil
}

// Certificate is the certificate of si among sd's, or nil.
func (sd *SignedData) Certificate(si *SignerInfo) *x509.Certificate {
	for _, c := range sd.Certificates {
		if bytes.Equal(c.RawIssuer, si.Issuer) && c.SerialNumber.Cmp(si.SerialNumber) == 0 {
			return c
		}
	}
	return nil
}

// VerifySignature checks that si signed signed (the content octets, or
// the detached data) with the key of its certificate in sd, and returns
// that certificate. It says nothing of whether that certificate is
// trusted: see Chains.
func (sd *SignedData) VerifySignature(si *SignerInfo, signed []byte) (*x509.Certificate, error) {
	cert := sd.Certificate(si)
	if cert == nil {
		return nil, errors.New("pkcs7: the signer's certificate is not included")
	}
	h := si.Hash.New()
	h.Write(signed)
	digest := h.Sum(nil)
	if si.RawAttributes != nil {
		var md []byte
		if v := si.Attribute(oidMessageDigest); v == nil {
			return nil, errors.New("pkcs7: no messageDigest attribute")
		} else if rest, err := asn1.Unmarshal(v, &md); err != nil || len(rest) != 0 {
			return nil, errors.New("pkcs7: malformed messageDigest attribute")
		}
		if !bytes.Equal(md, digest) {
			return nil, errors.New("pkcs7: message digest does not match the signed content")
		}
		var ct asn1.ObjectIdentifier
		if v := si.Attribute(oidContentType); v == nil {
			return nil, errors.New("pkcs7: no contentType attribute")
		} else if rest, err := asn1.Unmarshal(v, &ct); err != nil || len(rest) != 0 || !ct.Equal(sd.ContentType) {
			return nil, errors.New("pkcs7: contentType attribute does not match the content")
		}
		h := si.Hash.New()
		h.Write(tlv(cbasn1.SET, si.RawAttributes))
		digest = h.Sum(nil)
	}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if !si.SignatureOID.Equal(oidRSA) && !si.SignatureOID.Equal(oidSHA256WithRSA) {
			return nil, fmt.Errorf("pkcs7: signature algorithm %v does not fit an RSA key", si.SignatureOID)
		}
		if err := rsa.VerifyPKCS1v15(pub, si.Hash, digest, si.Signature); err != nil {
			return nil, fmt.Errorf("pkcs7: bad signature: %w", err)
		}
	case *ecdsa.PublicKey:
		if !si.SignatureOID.Equal(oidECDSASHA256) && !si.SignatureOID.Equal(oidECDSASHA384) {
			return nil, fmt.Errorf("pkcs7: signature algorithm %v does not fit an ECDSA key", si.SignatureOID)
		}
		if !ecdsa.VerifyASN1(pub, digest, si.Signature) {
			return nil, errors.New("pkcs7: bad signature")
		}
	default:
		return nil, fmt.Errorf("pkcs7: signer key type %T not supported", pub)
	}
	return cert, nil
}

// maxChain bounds the walk from a signer up to a trusted certificate.
const maxChain = 8

// Chains reports whether cert is trusted, or was issued (through
// certificates in sd) by trusted, as UEFI firmware checks a db entry:
// signatures only; validity dates and key usages are not checked.
func (sd *SignedData) Chains(cert, trusted *x509.Certificate) bool {
	for range maxChain {
		if cert.Equal(trusted) {
			return true
		}
		if issued(trusted, cert) {
			return true
		}
		var parent *x509.Certificate
		for _, c := range sd.Certificates {
			if c != cert && issued(c, cert) {
				parent = c
				break
			}
		}
		if parent == nil || parent.Equal(cert) {
			return false
		}
		cert = parent
	}
	return false
}

// issued reports whether parent's key signed cert. Unlike
// x509.Certificate.CheckSignatureFrom it does not ask parent to be a CA:
// firmware does not either.
func issued(parent, cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, parent.RawSubject) &&
		parent.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}
