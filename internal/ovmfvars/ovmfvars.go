// Package ovmfvars writes OVMF's variable store (the VARS flash file QEMU
// gives the firmware as its second pflash drive) with Secure Boot keys
// enrolled, so a machine boots enforcing with no enrollment step.
//
// The store is EDK2's: a firmware volume (EFI_FIRMWARE_VOLUME_HEADER)
// holding a VARIABLE_STORE_HEADER for authenticated variables, then
// AUTHENTICATED_VARIABLE_HEADER entries (each followed by its UTF-16
// name and data, 4-byte aligned), the unused rest 0xFF; the fault
// tolerant write areas after it are left as the template has them.
// Variables are written directly, not as signed updates: the firmware
// reads them at start-up, finds a PK, and so starts in user mode; with
// SecureBootEnable set it enforces. This is what virt-firmware's
// `virt-fw-vars --secure-boot --set-pk/--add-kek/--add-db` writes.
package ovmfvars

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf16"

	"github.com/keelos/keel/internal/efivar"
)

var (
	// systemNvDataFv is gEfiSystemNvDataFvGuid, the volume OVMF keeps
	// its variables in.
	systemNvDataFv = efivar.MustParseGUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
	// authenticatedVariableStore is gEfiAuthenticatedVariableGuid: a
	// store whose entries carry timestamps (needed for PK, KEK, db).
	authenticatedVariableStore = efivar.MustParseGUID("aaf32c78-947b-439a-a180-2e144ec37792")

	secureBootEnableDisable = efivar.MustParseGUID("f0a30bc7-af08-4556-99c4-001009c93a44")
	customModeEnable        = efivar.MustParseGUID("c076ec0c-7028-4399-a072-71ee5c448b9f")
	// enrollDefaultKeysOwner is the owner OVMF's EnrollDefaultKeys and
	// virt-fw-vars give their placeholder dbx entry.
	enrollDefaultKeysOwner = efivar.MustParseGUID("a0baa8a3-041d-48a8-bc87-c36d121b5e3d")
)

const (
	storeHeaderSize    = 28
	storeFormatted     = 0x5a
	storeHealthy       = 0xfe
	varHeaderSize      = 60
	varStartID         = 0x55aa
	varAdded           = 0x3f
	varInDeletedTrans  = 0xfe
	headerAlign        = 4
	fvSignatureOffset  = 40
	fvHeaderLenOffset  = 48
	fvLengthOffset     = 32
	fvFileSystemOffset = 16
)

// Variable is one variable to store.
type Variable struct {
	Name       string
	GUID       efivar.GUID
	Attributes uint32
	// Time is kept for time-based authenticated variables: a later
	// signed update must carry a later one.
	Time time.Time
	Data []byte
}

// SecureBoot is what enrolls keys and enforces Secure Boot: PK, KEK and
// db holding the given EFI signature lists, a placeholder dbx (one
// SHA-256 entry of the empty string, as virt-fw-vars and OVMF's
// EnrollDefaultKeys write: some OS tools expect dbx to exist), and
// SecureBootEnable=1, CustomMode=0. t stamps PK, KEK, db and dbx.
func SecureBoot(pk, kek, db []byte, t time.Time) []Variable {
	empty := sha256.Sum256(nil)
	dbx := efivar.SignatureList(efivar.CertSHA256, enrollDefaultKeysOwner, empty[:])
	const auth = efivar.SecureBootAttributes
	const nvbs = efivar.NonVolatile | efivar.BootserviceAccess
	return []Variable{
		{"PK", efivar.GlobalVariable, auth, t, pk},
		{"KEK", efivar.GlobalVariable, auth, t, kek},
		{"db", efivar.ImageSecurityDatabase, auth, t, db},
		{"dbx", efivar.ImageSecurityDatabase, auth, t, dbx},
		{"SecureBootEnable", secureBootEnableDisable, nvbs, time.Time{}, []byte{1}},
		{"CustomMode", customModeEnable, nvbs, time.Time{}, []byte{0}},
	}
}

// store is where the variable store lies in a VARS file.
type store struct {
	start, end int // the variable area: after the store header, to the store's end
}

func parseStore(fd []byte) (store, error) {
	var s store
	if len(fd) < 0x48 || string(fd[fvSignatureOffset:fvSignatureOffset+4]) != "_FVH" {
		return s, errors.New("not an OVMF variable store: no firmware volume header")
	}
	if efivar.GUID(fd[fvFileSystemOffset:fvFileSystemOffset+16]) != systemNvDataFv {
		return s, errors.New("firmware volume is not an NV variable volume")
	}
	if fvLen := binary.LittleEndian.Uint64(fd[fvLengthOffset:]); fvLen != uint64(len(fd)) {
		return s, fmt.Errorf("firmware volume says %d bytes, the file has %d", fvLen, len(fd))
	}
	hdr := int(binary.LittleEndian.Uint16(fd[fvHeaderLenOffset:]))
	if hdr < 0x48 || hdr+storeHeaderSize > len(fd) {
		return s, errors.New("firmware volume header length outside the file")
	}
	vs := fd[hdr:]
	switch g := efivar.GUID(vs[:16]); g {
	case authenticatedVariableStore:
	default:
		return s, fmt.Errorf("variable store %s is not an authenticated one (use OVMF_VARS*.fd from a Secure Boot capable OVMF)", g)
	}
	size := int(binary.LittleEndian.Uint32(vs[16:]))
	if vs[20] != storeFormatted || vs[21] != storeHealthy {
		return s, errors.New("variable store is not formatted and healthy")
	}
	if size < storeHeaderSize || size > len(vs) {
		return s, fmt.Errorf("variable store size %d outside the file", size)
	}
	s.start = alignUp(hdr+storeHeaderSize, headerAlign)
	s.end = hdr + size
	return s, nil
}

// Read lists the live variables of a VARS file, in store order.
func Read(fd []byte) ([]Variable, error) {
	s, err := parseStore(fd)
	if err != nil {
		return nil, err
	}
	var vars []Variable
	for off := s.start; off+varHeaderSize <= s.end; {
		h := fd[off:]
		if binary.LittleEndian.Uint16(h) != varStartID {
			break // the free space
		}
		state := h[2]
		attrs := binary.LittleEndian.Uint32(h[4:])
		nameSize := int(binary.LittleEndian.Uint32(h[36:]))
		dataSize := int(binary.LittleEndian.Uint32(h[40:]))
		if nameSize < 2 || nameSize%2 != 0 || dataSize < 0 || varHeaderSize+nameSize+dataSize > s.end-off {
			return nil, fmt.Errorf("variable at %#x runs past the store", off)
		}
		if state == varAdded || state == varAdded&varInDeletedTrans {
			name := make([]uint16, nameSize/2-1)
			for i := range name {
				name[i] = binary.LittleEndian.Uint16(h[varHeaderSize+2*i:])
			}
			v := Variable{
				Name:       string(utf16.Decode(name)),
				GUID:       efivar.GUID(h[44:60]),
				Attributes: attrs,
				Data:       bytes.Clone(h[varHeaderSize+nameSize:][:dataSize]),
			}
			if t, ok := efivar.ParseTime([16]byte(h[16:32])); ok {
				v.Time = t
			}
			vars = append(vars, v)
		}
		off = alignUp(off+varHeaderSize+nameSize+dataSize, headerAlign)
	}
	return vars, nil
}

// Write returns a copy of template, a VARS file, whose store holds the
// template's live variables (those vars does not replace), then vars.
// The store is written compacted: no deleted entries.
func Write(template []byte, vars []Variable) ([]byte, error) {
	s, err := parseStore(template)
	if err != nil {
		return nil, err
	}
	old, err := Read(template)
	if err != nil {
		return nil, err
	}
	replaced := func(v Variable) bool {
		for _, n := range vars {
			if n.Name == v.Name && n.GUID == v.GUID {
				return true
			}
		}
		return false
	}
	out := bytes.Clone(template)
	area := out[s.start:s.end]
	for i := range area {
		area[i] = 0xff
	}
	off := 0
	for _, v := range append(slices.DeleteFunc(old, replaced), vars...) {
		enc, err := encode(v)
		if err != nil {
			return nil, err
		}
		if off+len(enc) > len(area) {
			return nil, fmt.Errorf("variables do not fit in the %d-byte store", len(area))
		}
		copy(area[off:], enc)
		off = alignUp(off+len(enc), headerAlign)
	}
	return out, nil
}

// encode is v's AUTHENTICATED_VARIABLE_HEADER, name and data.
func encode(v Variable) ([]byte, error) {
	if v.Name == "" {
		return nil, errors.New("variable without a name")
	}
	var name []byte
	for _, c := range utf16.Encode([]rune(v.Name)) {
		name = binary.LittleEndian.AppendUint16(name, c)
	}
	name = append(name, 0, 0)
	b := make([]byte, varHeaderSize, varHeaderSize+len(name)+len(v.Data))
	binary.LittleEndian.PutUint16(b[0:], varStartID)
	b[2] = varAdded
	binary.LittleEndian.PutUint32(b[4:], v.Attributes)
	// MonotonicCount (8 bytes at 8) and PubKeyIndex (at 32) stay zero:
	// they belong to the retired count-based authenticated variables.
	if !v.Time.IsZero() {
		ts, err := efivar.Time(v.Time)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		copy(b[16:], ts[:])
	}
	binary.LittleEndian.PutUint32(b[36:], uint32(len(name)))
	binary.LittleEndian.PutUint32(b[40:], uint32(len(v.Data)))
	copy(b[44:], v.GUID[:])
	b = append(b, name...)
	return append(b, v.Data...), nil
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }
