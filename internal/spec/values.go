package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Archs are the target architectures keel builds for (GOARCH names).
var Archs = []string{"amd64", "arm64"}

// Formats are the output formats of [output] formats, in DESIGN.md order.
var Formats = []string{
	"kernel+initrd", "tar", "uki", "iso-efi", "iso-bios", "iso", "raw-efi", "raw-bios", "raw",
	"qcow2-efi", "qcow2-bios", "vhd", "dynamic-vhd", "vhdx", "vmdk", "ova", "gce", "aws", "rpi",
}

// RootFormats are the values of [output] root.
var RootFormats = []string{"initrd", "squashfs", "erofs"}

// RestartPolicies are the values of a container's restart key.
var RestartPolicies = []string{"always", "on-failure", "never"}

// capabilities are Linux 6.x's capabilities, numbered as in
// include/uapi/linux/capability.h.
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Capabilities returns every capability name keel knows, CAP_ prefixed,
// in kernel number order.
func Capabilities() []string { return append([]string(nil), capabilities...) }

// NormalizeCapability returns the canonical form of a capability name:
// "CAP_NET_ADMIN" for "net_admin", "NET_ADMIN" or "cap_net_admin", and
// "all" for "all" in any case.
func NormalizeCapability(name string) (string, error) {
	if strings.EqualFold(name, "all") {
		return "all", nil
	}
	c := strings.ToUpper(name)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	for _, k := range capabilities {
		if k == c {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown capability %q", name)
}

// rlimits maps the short names of RLIMIT_* to their canonical names.
var rlimits = []string{
	"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
}

// RlimitUnlimited is the value of "unlimited" in an rlimit.
const RlimitUnlimited = math.MaxUint64

// Rlimit is one parsed rlimits entry.
type Rlimit struct {
	Name string // RLIMIT_NOFILE
	Soft uint64 // RlimitUnlimited for "unlimited"
	Hard uint64
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
	known := false
	for _, r := range rlimits {
		known = known || r == short
	}
	if !known {
		return Rlimit{}, fmt.Errorf("unknown rlimit %q", parts[0])
	}
	r := Rlimit{Name: "RLIMIT_" + strings.ToUpper(short)}
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
// 1024.
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

// ParseCPU parses resources.cpu, a positive decimal number of CPUs.
func ParseCPU(s string) (float64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.TrimLeft(whole, "0123456789") != "" || strings.TrimLeft(frac, "0123456789") != "" || strings.HasSuffix(s, ".") {
		return 0, fmt.Errorf("cpu %q: want a positive decimal number, like 0.5", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) {
		return 0, errors.New("cpu " + strconv.Quote(s) + ": want a positive decimal number, like 0.5")
	}
	return v, nil
}
