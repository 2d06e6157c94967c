// Package efivar encodes the UEFI variable data Secure Boot keys travel
// in: EFI_SIGNATURE_LISTs of X.509 certificates (the contents of PK, KEK
// and db) and time-based authenticated variable updates
// (EFI_VARIABLE_AUTHENTICATION_2, the .auth files firmware in setup mode
// enrolls, as efitools' sign-efi-sig-list writes them).
package efivar

import (
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/keelos/keel/internal/pkcs7"
)

// GUID is an EFI_GUID in its in-memory (mixed-endian) byte order.
type GUID [16]byte

// ParseGUID reads the textual form, 8-4-4-4-12 hex digits.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	return FromUUID([16]byte(b)), nil
}

// MustParseGUID is ParseGUID for constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// FromUUID converts the 16 bytes of an RFC 4122 UUID (big-endian
// fields) to EFI order: the first three fields little-endian.
func FromUUID(b [16]byte) GUID {
	g := GUID(b)
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:]),
		binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// Vendor GUIDs and signature types Secure Boot uses.
var (
	// GlobalVariable holds PK and KEK (EFI_GLOBAL_VARIABLE).
	GlobalVariable = MustParseGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	// ImageSecurityDatabase holds db and dbx.
	ImageSecurityDatabase = MustParseGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
	// CertX509 is EFI_CERT_X509_GUID, the signature type of a DER
	// certificate.
	CertX509 = MustParseGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	// CertSHA256 is EFI_CERT_SHA256_GUID, the signature type of an image
	// digest.
	CertSHA256 = MustParseGUID("c1c41626-504c-4092-aca9-41f936934328")
	// certTypePKCS7 is EFI_CERT_TYPE_PKCS7_GUID, the type of an
	// authenticated variable's signature.
	certTypePKCS7 = MustParseGUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
)

// Variable attributes.
const (
	NonVolatile       = 0x01
	BootserviceAccess = 0x02
	RuntimeAccess     = 0x04
	// TimeBasedAuthenticatedWriteAccess marks a variable that is only
	// written with a signed, timestamped update.
	TimeBasedAuthenticatedWriteAccess = 0x20
	AppendWrite                       = 0x40

	// SecureBootAttributes are those of PK, KEK, db and dbx.
	SecureBootAttributes = NonVolatile | BootserviceAccess | RuntimeAccess | TimeBasedAuthenticatedWriteAccess
)

// Time is t as an EFI_TIME in UTC with the fields authenticated
// variables require zero (nanoseconds, time zone, daylight) zero.
func Time(t time.Time) ([16]byte, error) {
	var e [16]byte
	t = t.UTC()
	if t.Year() < 1900 || t.Year() > 9999 {
		return e, fmt.Errorf("time %v outside what EFI_TIME holds", t)
	}
	binary.LittleEndian.PutUint16(e[0:], uint16(t.Year()))
	e[2], e[3] = byte(t.Month()), byte(t.Day())
	e[4], e[5], e[6] = byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	return e, nil
}

// ParseTime reads an EFI_TIME as Time writes it; ok is false for the
// all-zero time of a variable that has none.
func ParseTime(e [16]byte) (t time.Time, ok bool) {
	y := int(binary.LittleEndian.Uint16(e[:]))
	if y == 0 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(e[2]), int(e[3]), int(e[4]), int(e[5]), int(e[6]), 0, time.UTC), true
}

const signatureListHeader = 28 // EFI_SIGNATURE_LIST without its entries

// SignatureList is an EFI_SIGNATURE_LIST of type typ (CertX509: a DER
// certificate; CertSHA256: a digest) holding data, owned by owner.
func SignatureList(typ, owner GUID, data []byte) []byte {
	size := 16 + len(data) // EFI_SIGNATURE_DATA: owner GUID, then the data
	b := make([]byte, signatureListHeader, signatureListHeader+size)
	copy(b, typ[:])
	binary.LittleEndian.PutUint32(b[16:], uint32(signatureListHeader+size)) // SignatureListSize
	binary.LittleEndian.PutUint32(b[20:], 0)                                // SignatureHeaderSize
	binary.LittleEndian.PutUint32(b[24:], uint32(size))                     // SignatureSize
	b = append(b, owner[:]...)
	return append(b, data...)
}

// Signature is one entry of an EFI_SIGNATURE_LIST.
type Signature struct {
	Type  GUID // the list's SignatureType
	Owner GUID
	Data  []byte
}

// ParseSignatureLists reads the concatenated EFI_SIGNATURE_LISTs of a
// variable such as db.
func ParseSignatureLists(b []byte) ([]Signature, error) {
	var sigs []Signature
	for len(b) > 0 {
		if len(b) < signatureListHeader {
			return nil, errors.New("signature list truncated")
		}
		var typ GUID
		copy(typ[:], b)
		listSize := binary.LittleEndian.Uint32(b[16:])
		hdrSize := binary.LittleEndian.Uint32(b[20:])
		sigSize := binary.LittleEndian.Uint32(b[24:])
		if uint64(listSize) > uint64(len(b)) || uint64(listSize) < signatureListHeader+uint64(hdrSize) || sigSize < 16 ||
			(uint64(listSize)-signatureListHeader-uint64(hdrSize))%uint64(sigSize) != 0 {
			return nil, fmt.Errorf("signature list of type %s has inconsistent sizes", typ)
		}
		entries := b[signatureListHeader+hdrSize : listSize]
		for len(entries) > 0 {
			var s Signature
			s.Type = typ
			copy(s.Owner[:], entries)
			s.Data = entries[16:sigSize]
			sigs = append(sigs, s)
			entries = entries[sigSize:]
		}
		b = b[listSize:]
	}
	return sigs, nil
}

// Update is an authenticated variable write.
type Update struct {
	Name       string
	GUID       GUID
	Attributes uint32
	// Time is the update's timestamp: firmware refuses an update not
	// later than the one that set the variable.
	Time time.Time
	Data []byte
}

// signedBytes is what the update's signature covers: the name (UTF-16,
// no terminator), vendor GUID, attributes, timestamp and data.
func (u Update) signedBytes(ts [16]byte) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(u.Name)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, u.GUID[:]...)
	b = binary.LittleEndian.AppendUint32(b, u.Attributes)
	b = append(b, ts[:]...)
	return append(b, u.Data...)
}

const (
	winCertRevision = 0x0200
	winCertEFIGUID  = 0x0EF1 // WIN_CERT_TYPE_EFI_GUID
	authHeaderSize  = 16 + 8 + 16
)

// Sign returns the update as an .auth file: EFI_VARIABLE_AUTHENTICATION_2
// (timestamp, then WIN_CERTIFICATE_UEFI_GUID holding a detached PKCS #7
// SignedData, without authenticated attributes, over the signed bytes)
// followed by the data. signer's certificate is cert: for PK and KEK
// updates the PK's, for db the KEK's.
func (u Update) Sign(signer crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if u.Attributes&TimeBasedAuthenticatedWriteAccess == 0 {
		return nil, fmt.Errorf("%s: a time-based authenticated update needs the time-based attribute", u.Name)
	}
	ts, err := Time(u.Time)
	if err != nil {
		return nil, err
	}
	sd, err := pkcs7.Sign(pkcs7.Request{
		ContentType: pkcs7.OIDData,
		Signed:      u.signedBytes(ts),
		Hash:        crypto.SHA256,
		Signer:      signer,
		Certificate: cert,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Name, err)
	}
	b := make([]byte, authHeaderSize, authHeaderSize+len(sd)+len(u.Data))
	copy(b, ts[:])
	binary.LittleEndian.PutUint32(b[16:], uint32(8+16+len(sd))) // dwLength: header, CertType, CertData
	binary.LittleEndian.PutUint16(b[20:], winCertRevision)
	binary.LittleEndian.PutUint16(b[22:], winCertEFIGUID)
	copy(b[24:], certTypePKCS7[:])
	b = append(b, sd...)
	return append(b, u.Data...), nil
}

// Authenticated is a parsed .auth file.
type Authenticated struct {
	Time      [16]byte // EFI_TIME as stored
	Signature *pkcs7.SignedData
	Data      []byte
}

// ParseAuthenticated reads an .auth file (EFI_VARIABLE_AUTHENTICATION_2
// and data).
func ParseAuthenticated(b []byte) (*Authenticated, error) {
	if len(b) < authHeaderSize {
		return nil, errors.New("authenticated variable shorter than its header")
	}
	a := &Authenticated{}
	copy(a.Time[:], b)
	n := int(binary.LittleEndian.Uint32(b[16:]))
	if binary.LittleEndian.Uint16(b[20:]) != winCertRevision || binary.LittleEndian.Uint16(b[22:]) != winCertEFIGUID ||
		GUID(b[24:40]) != certTypePKCS7 {
		return nil, errors.New("authenticated variable: not a WIN_CERTIFICATE_UEFI_GUID with a PKCS #7 signature")
	}
	if n < 24 || n > len(b)-16 {
		return nil, fmt.Errorf("authenticated variable: certificate length %d outside the file", n)
	}
	sd, err := pkcs7.Parse(b[authHeaderSize : 16+n])
	if err != nil {
		return nil, fmt.Errorf("authenticated variable: %w", err)
	}
	a.Signature = sd
	a.Data = b[16+n:]
	return a, nil
}

// Verify checks that a is u's data signed by trusted (or by a
// certificate trusted issued), as firmware checks an update to the
// variable u names.
func (a *Authenticated) Verify(name string, guid GUID, attrs uint32, trusted *x509.Certificate) error {
	u := Update{Name: name, GUID: guid, Attributes: attrs, Data: a.Data}
	signed := u.signedBytes(a.Time)
	for i := range a.Signature.Signers {
		signer, err := a.Signature.VerifySignature(&a.Signature.Signers[i], signed)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if a.Signature.Chains(signer, trusted) {
			return nil
		}
	}
	return fmt.Errorf("%s: not signed by %q", name, trusted.Subject)
}
