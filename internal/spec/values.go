package spec

import (
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/keelos/keel/internal/layout"
)

// Archs are the target architectures keel builds for (GOARCH names).
var Archs = []string{"amd64", "arm64"}

// RootFormats are the values of [output] root.
var RootFormats = []string{"initrd", "squashfs", "erofs"}

// RestartPolicies are the values of a container's restart key.
var RestartPolicies = []string{layout.RestartAlways, layout.RestartOnFailure, layout.RestartNever}

// The values below have a syntax of their own (a size, a mode, a number
// of CPUs, an rlimit, a capability). Each is decoded once, where the spec,
// a package's [config] or an image label is read, into a type holding what
// it means; later stages use that and never parse the text again. Each
// type keeps the text as written and encodes back to it (MarshalText), so
// a resolved spec or a label written again is byte for byte what its
// author wrote. The zero value of each is "unset" and encodes as "".

// hintError is a bad value for which a likely intended one is known; the
// decoder reports it as a suggestion.
type hintError struct{ msg, hint string }

func (e *hintError) Error() string { return e.msg }

// MustParse decodes text as the spec's decoder decodes a value of type T
// (Size, FileMode, CPU, Rlimit, Capability). It panics on a bad value, so
// it is for values a program spells itself: its defaults and its tests.
func MustParse[T any, P interface {
	*T
	encoding.TextUnmarshaler
}](text string) T {
	var v T
	if err := P(&v).UnmarshalText([]byte(text)); err != nil {
		panic(fmt.Sprintf("spec.MustParse(%q): %v", text, err))
	}
	return v
}

// AllCapabilities, in capabilities or ambient, stands for every capability.
const AllCapabilities = "all"

// Capability is one entry of capabilities or ambient: a capability name
// in any of its spellings ("net_admin", "NET_ADMIN", "cap_net_admin",
// "CAP_NET_ADMIN"), or "all" in any case.
type Capability struct {
	name string // canonical: CAP_NET_ADMIN, or AllCapabilities
	text string
}

// ParseCapability reads a capability name.
func ParseCapability(s string) (Capability, error) {
	if strings.EqualFold(s, AllCapabilities) {
		return Capability{name: AllCapabilities, text: s}, nil
	}
	c := strings.ToUpper(s)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	// The kernel's numbers, which init gives capset, are the same table's.
	if _, ok := layout.CapabilityNumber(c); ok {
		return Capability{name: c, text: s}, nil
	}
	return Capability{}, &hintError{msg: fmt.Sprintf("unknown capability %q", s), hint: suggest(c, layout.Capabilities())}
}

// Name is the canonical name: "CAP_NET_ADMIN", or AllCapabilities.
func (c Capability) Name() string { return c.name }

// IsAll reports whether c stands for every capability.
func (c Capability) IsAll() bool { return c.name == AllCapabilities }

func (c Capability) String() string { return c.text }

// MarshalText writes the name as it was written.
func (c Capability) MarshalText() ([]byte, error) { return []byte(c.text), nil }

// UnmarshalText reads a name as ParseCapability does.
func (c *Capability) UnmarshalText(b []byte) error {
	v, err := ParseCapability(string(b))
	if err == nil {
		*c = v
	}
	return err
}

// RlimitUnlimited is the value of "unlimited" in an rlimit.
const RlimitUnlimited = math.MaxUint64

// Rlimit is one entry of rlimits, "NAME,SOFT,HARD".
type Rlimit struct {
	Name string // RLIMIT_NOFILE
	Soft uint64 // RlimitUnlimited for "unlimited"
	Hard uint64
	text string // as written; "" for a value built in code
}

// ParseRlimit parses "NAME,SOFT,HARD", NAME being RLIMIT_NOFILE or nofile
// (any case) and SOFT, HARD decimal or "unlimited"; soft may not exceed
// hard.
func ParseRlimit(s string) (Rlimit, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return Rlimit{}, fmt.Errorf("rlimit %q: want NAME,SOFT,HARD", s)
	}
	short := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(parts[0])), "rlimit_")
	r := Rlimit{Name: "RLIMIT_" + strings.ToUpper(short), text: s}
	// init sets the limit by the same table. Its names are ASCII: a
	// short name that only upper-cases to one is none.
	if _, ok := layout.RlimitResource(r.Name); !ok || strings.ToLower(r.Name) != "rlimit_"+short {
		return Rlimit{}, fmt.Errorf("unknown rlimit %q", parts[0])
	}
	var err error
	if r.Soft, err = parseLimit(parts[1]); err != nil {
		return Rlimit{}, fmt.Errorf("rlimit %q soft limit: %w", s, err)
	}
	if r.Hard, err = parseLimit(parts[2]); err != nil {
		return Rlimit{}, fmt.Errorf("rlimit %q hard limit: %w", s, err)
	}
	if r.Soft > r.Hard {
		return Rlimit{}, fmt.Errorf("rlimit %q: soft limit above hard limit", s)
	}
	return r, nil
}

func parseLimit(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "unlimited") || strings.EqualFold(s, "infinity") {
		return RlimitUnlimited, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number or \"unlimited\"", s)
	}
	return v, nil
}

func (r Rlimit) String() string {
	b, _ := r.MarshalText()
	return string(b)
}

// MarshalText writes the limit as it was written; one built in code is
// written as "RLIMIT_NAME,SOFT,HARD".
func (r Rlimit) MarshalText() ([]byte, error) {
	if r.text != "" || r.Name == "" {
		return []byte(r.text), nil
	}
	limit := func(v uint64) string {
		if v == RlimitUnlimited {
			return "unlimited"
		}
		return strconv.FormatUint(v, 10)
	}
	return []byte(r.Name + "," + limit(r.Soft) + "," + limit(r.Hard)), nil
}

// UnmarshalText reads a limit as ParseRlimit does.
func (r *Rlimit) UnmarshalText(b []byte) error {
	v, err := ParseRlimit(string(b))
	if err == nil {
		*r = v
	}
	return err
}

// sizeUnits are binary whatever their spelling: "64M" is 64 MiB, as in
// Docker, LinuxKit and tmpfs.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"kib", 10}, {"mib", 20}, {"gib", 30}, {"tib", 40},
	{"ki", 10}, {"mi", 20}, {"gi", 30}, {"ti", 40},
	{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40},
	{"b", 0},
}

// ParseSize parses a size: a decimal number of bytes optionally followed
// by a unit K, M, G, T (also KiB, MiB, GiB, TiB; any case), all powers of
// 1024. It accepts 0; a spec's sizes are Size values, which do not.
func ParseSize(s string) (int64, error) {
	num := strings.ToLower(strings.TrimSpace(s))
	var shift uint
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, shift = strings.TrimSuffix(num, u.suffix), u.shift
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit K, M, G, T (KiB, MiB, GiB, TiB)", s)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || (v != 0 && bits.Len64(uint64(v))+int(shift) > 63) {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return v << shift, nil
}

// Size is a size of the spec (a volume's, a disk's, a memory limit): a
// positive number of bytes, written as ParseSize reads it.
type Size struct {
	bytes int64
	text  string
}

// Bytes is the size in bytes, 0 when unset.
func (s Size) Bytes() int64 { return s.bytes }

// IsSet reports whether a size was given.
func (s Size) IsSet() bool { return s.bytes != 0 }

func (s Size) String() string { return s.text }

// MarshalText writes the size as it was written.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.text), nil }

// UnmarshalText reads a size as ParseSize does, refusing 0.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	if v == 0 {
		return errors.New("size must be above zero")
	}
	*s = Size{bytes: v, text: string(b)}
	return nil
}

// ParseMode parses an octal permission mode ("0644", "755", "1777",
// "04755"); the setuid, setgid and sticky bits become fs.ModeSetuid,
// fs.ModeSetgid and fs.ModeSticky.
func ParseMode(s string) (fs.FileMode, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "01234567") != "" {
		return 0, fmt.Errorf("mode %q: want octal digits, like 0644", s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q: above 07777", s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// FileMode is the mode of a file or device node, written as ParseMode
// reads it; "" leaves it unset.
type FileMode struct {
	mode fs.FileMode
	text string
}

// Mode is the permission bits with fs.ModeSetuid, fs.ModeSetgid and
// fs.ModeSticky; 0 when unset.
func (m FileMode) Mode() fs.FileMode { return m.mode }

// IsSet reports whether a mode was given ("0000" is one).
func (m FileMode) IsSet() bool { return m.text != "" }

// Or is the mode, or def when none was given.
func (m FileMode) Or(def fs.FileMode) fs.FileMode {
	if !m.IsSet() {
		return def
	}
	return m.mode
}

func (m FileMode) String() string { return m.text }

// MarshalText writes the mode as it was written.
func (m FileMode) MarshalText() ([]byte, error) { return []byte(m.text), nil }

// UnmarshalText reads a mode as ParseMode does; "" is unset.
func (m *FileMode) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = FileMode{}
		return nil
	}
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = FileMode{mode: v, text: string(b)}
	return nil
}

// microsPerCPU is the resolution of a CPU value: a millionth of a CPU,
// finer than any CFS quota (a microsecond of a period of at least 1 ms).
const microsPerCPU = 1_000_000

// CPU is resources.cpu: a positive decimal number of CPUs ("0.5", "2"),
// held exactly in millionths of a CPU, so no float reaches an output.
type CPU struct {
	micros int64
	text   string
}

// ParseCPU parses a positive decimal number of CPUs. Digits past the
// sixth decimal are rounded (half up); a positive value stays at least
// one millionth.
func ParseCPU(s string) (CPU, error) {
	bad := fmt.Errorf("cpu %q: want a positive decimal number, like 0.5", s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.TrimLeft(whole, "0123456789") != "" || strings.TrimLeft(frac, "0123456789") != "" || strings.HasSuffix(s, ".") {
		return CPU{}, bad
	}
	if strings.Trim(whole+frac, "0") == "" {
		return CPU{}, bad
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (math.MaxInt64-microsPerCPU)/microsPerCPU {
		return CPU{}, fmt.Errorf("cpu %q: too large", s)
	}
	digits := (frac + "0000000")[:7] // six decimals and the one that rounds them
	f, _ := strconv.ParseInt(digits[:6], 10, 64)
	if digits[6] >= '5' {
		f++
	}
	return CPU{micros: max(1, w*microsPerCPU+f), text: s}, nil
}

// Micros is the number of CPUs in millionths, 0 when unset.
func (c CPU) Micros() int64 { return c.micros }

// IsSet reports whether a number of CPUs was given.
func (c CPU) IsSet() bool { return c.micros != 0 }

func (c CPU) String() string { return c.text }

// MarshalText writes the number as it was written.
func (c CPU) MarshalText() ([]byte, error) { return []byte(c.text), nil }

// UnmarshalText reads a number as ParseCPU does.
func (c *CPU) UnmarshalText(b []byte) error {
	v, err := ParseCPU(string(b))
	if err == nil {
		*c = v
	}
	return err
}
