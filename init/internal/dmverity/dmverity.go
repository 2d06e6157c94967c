// Package dmverity opens a dm-verity device over a data and a hash block
// device through device-mapper's ioctls, as init does for a verified root:
// no veritysetup, dmsetup or libdevmapper in the image.
//
// The hash device is what keel's builder writes (internal/verity, in
// veritysetup's format): a superblock, then the tree from block HashStart,
// SHA-256, 4096-byte blocks, format version 1. Nothing is read from the
// superblock: every parameter comes from the kernel command line, which a
// signed UKI covers, so the disk cannot change what is checked.
package dmverity

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// The fixed parameters of keel's trees.
const (
	BlockSize = 4096
	Algorithm = "sha256"
	// HashStart is the tree's first block in the hash device: the
	// superblock fills block 0.
	HashStart = 1
)

// Policy is what the kernel does when a block does not match its hash.
// Under every policy the corrupt block is never returned to a reader.
type Policy string

const (
	// Log fails the read with EIO and logs the block (dm-verity's own
	// default); the machine goes on.
	Log Policy = "log"
	// Restart logs the block and restarts the machine
	// (restart_on_corruption).
	Restart Policy = "restart"
	// Panic logs the block and panics the kernel (panic_on_corruption);
	// the kernel's panic= setting decides whether it then reboots.
	Panic Policy = "panic"
)

// DefaultPolicy is the policy when the command line sets none.
const DefaultPolicy = Restart

// ParsePolicy reads a policy by name.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Log, Restart, Panic:
		return p, nil
	}
	return "", fmt.Errorf("corruption policy %q: want restart, panic or log", s)
}

// tableArg is the policy's optional argument on the verity table line.
func (p Policy) tableArg() string {
	switch p {
	case Restart:
		return "restart_on_corruption"
	case Panic:
		return "panic_on_corruption"
	}
	return ""
}

// Target is what a verity device checks: the devices and the tree's
// parameters.
type Target struct {
	Data, Hash   string // block device nodes
	DataBlocks   uint64 // of BlockSize bytes: the device's size
	HashStart    uint64 // the tree's first block in Hash
	RootHash     []byte // SHA-256
	Salt         []byte
	OnCorruption Policy // "" is DefaultPolicy
}

// table is the verity target's parameter line for the devices given as
// major:minor.
func (t Target) table(data, hash string) string {
	salt := "-"
	if len(t.Salt) > 0 {
		salt = hex.EncodeToString(t.Salt)
	}
	line := fmt.Sprintf("1 %s %s %d %d %d %d %s %x %s", data, hash, BlockSize, BlockSize, t.DataBlocks, t.HashStart, Algorithm, t.RootHash, salt)
	policy := t.OnCorruption
	if policy == "" {
		policy = DefaultPolicy
	}
	if arg := policy.tableArg(); arg != "" {
		line += " 1 " + arg
	}
	return line
}

func (t Target) check() error {
	switch {
	case len(t.RootHash) != 32:
		return fmt.Errorf("root hash of %d bytes, want 32 (SHA-256)", len(t.RootHash))
	case len(t.Salt) > 256:
		return fmt.Errorf("salt of %d bytes, at most 256", len(t.Salt))
	case t.DataBlocks == 0 || t.DataBlocks > 1<<50:
		return fmt.Errorf("%d data blocks", t.DataBlocks)
	}
	if t.OnCorruption != "" {
		if _, err := ParsePolicy(string(t.OnCorruption)); err != nil {
			return err
		}
	}
	return nil
}

// Device is an open verity device.
type Device struct {
	Name string // the device-mapper name
	Path string // its node, /dev/dm-N
}

// ControlPath is device-mapper's control device.
const ControlPath = "/dev/mapper/control"

// Open creates the read-only verity device name over t. Its reads return
// only blocks that match the tree; t.OnCorruption says what happens on
// one that does not.
func Open(name string, t Target) (*Device, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("verity %s: %w", name, err)
	}
	if len(name) == 0 || len(name) >= unix.DM_NAME_LEN || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("verity %s: device-mapper names are 1 to %d bytes without /", name, unix.DM_NAME_LEN-1)
	}
	data, err := devNumber(t.Data)
	if err != nil {
		return nil, fmt.Errorf("verity %s: data: %w", name, err)
	}
	hash, err := devNumber(t.Hash)
	if err != nil {
		return nil, fmt.Errorf("verity %s: hash: %w", name, err)
	}
	ctl, err := openControl()
	if err != nil {
		return nil, fmt.Errorf("verity %s: %w", name, err)
	}
	defer ctl.Close()

	hdr, err := dmIoctl(ctl, unix.DM_DEV_CREATE, name, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("verity %s: creating the device: %w", name, err)
	}
	dev := hdr.Dev
	ok := false
	defer func() {
		if !ok {
			_, _ = dmIoctl(ctl, unix.DM_DEV_REMOVE, name, 0, nil)
		}
	}()
	spec := target{start: 0, length: t.DataBlocks * (BlockSize / 512), typ: "verity", params: t.table(data, hash)}
	if _, err := dmIoctl(ctl, unix.DM_TABLE_LOAD, name, unix.DM_READONLY_FLAG, &spec); err != nil {
		if errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w (the kernel log says why: is the dm_verity module loaded, and do the devices hold %d data blocks and the tree?)", err, t.DataBlocks)
		}
		return nil, fmt.Errorf("verity %s: loading the table %q: %w", name, spec.params, err)
	}
	// Resuming a device with a table loaded and no DM_SUSPEND_FLAG makes
	// that table live.
	if _, err := dmIoctl(ctl, unix.DM_DEV_SUSPEND, name, 0, nil); err != nil {
		return nil, fmt.Errorf("verity %s: activating the table: %w", name, err)
	}
	path, err := deviceNode(dev)
	if err != nil {
		return nil, fmt.Errorf("verity %s: %w", name, err)
	}
	ok = true
	return &Device{Name: name, Path: path}, nil
}

// Close removes the device; it fails with EBUSY while it is mounted or
// open.
func (d *Device) Close() error {
	ctl, err := openControl()
	if err != nil {
		return fmt.Errorf("verity %s: %w", d.Name, err)
	}
	defer ctl.Close()
	if _, err := dmIoctl(ctl, unix.DM_DEV_REMOVE, d.Name, 0, nil); err != nil {
		return fmt.Errorf("verity %s: removing the device: %w", d.Name, err)
	}
	return nil
}

// devNumber is a block device's major:minor, as a table names it (a path
// would have the kernel look the node up again).
func devNumber(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("%s is not a block device", path)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)), nil
}

// openControl opens device-mapper's control device, making its node from
// sysfs when /dev has none (a /dev that is not devtmpfs).
func openControl() (*os.File, error) {
	f, err := os.OpenFile(ControlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	nums, serr := os.ReadFile("/sys/class/misc/device-mapper/dev")
	if serr != nil {
		return nil, fmt.Errorf("this kernel has no device-mapper (no %s, no /sys/class/misc/device-mapper): it needs CONFIG_BLK_DEV_DM and CONFIG_DM_VERITY, or the dm_mod and dm_verity modules loaded", ControlPath)
	}
	dev, err := parseDev(string(nums))
	if err != nil {
		return nil, fmt.Errorf("/sys/class/misc/device-mapper/dev: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(ControlPath), 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mknod(ControlPath, unix.S_IFCHR|0o600, int(dev)); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("making %s: %w", ControlPath, err)
	}
	return os.OpenFile(ControlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
}

// parseDev reads "major:minor" as sysfs writes it.
func parseDev(s string) (uint64, error) {
	maj, mi, ok := strings.Cut(strings.TrimSpace(s), ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(mi, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not major:minor", s)
	}
	return unix.Mkdev(uint32(a), uint32(b)), nil
}

// deviceNode is the node of device-mapper device dev: devtmpfs makes
// /dev/dm-N as the device appears; without devtmpfs it is made here.
func deviceNode(dev uint64) (string, error) {
	path := fmt.Sprintf("/dev/dm-%d", unix.Minor(dev))
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == dev {
			return path, nil
		}
		return "", fmt.Errorf("%s is not device %d:%d", path, unix.Major(dev), unix.Minor(dev))
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(dev)); err != nil {
		return "", fmt.Errorf("making %s: %w", path, err)
	}
	return path, nil
}

// target is one line of a device-mapper table.
type target struct {
	start, length uint64 // in 512-byte sectors
	typ, params   string
}

// dmIoctl runs one device-mapper command on device name and returns the
// header as the kernel filled it in. The buffer is struct dm_ioctl, then
// for a table load one struct dm_target_spec and its parameter string.
func dmIoctl(ctl *os.File, cmd uint, name string, flags uint32, t *target) (*unix.DmIoctl, error) {
	size := unix.SizeofDmIoctl
	if t != nil {
		size += unix.SizeofDmTargetSpec + len(t.params) + 1
	}
	size = (size + 7) &^ 7
	// Words, so that the structs in it are aligned.
	words := make([]uint64, size/8)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
	hdr := (*unix.DmIoctl)(unsafe.Pointer(&buf[0]))
	// The oldest interface version with everything used here: the kernel
	// accepts any 4.x up to its own.
	hdr.Version = [3]uint32{4, 0, 0}
	hdr.Data_size = uint32(size)
	hdr.Data_start = unix.SizeofDmIoctl
	hdr.Flags = flags
	copy(hdr.Name[:unix.DM_NAME_LEN-1], name)
	if t != nil {
		if len(t.typ) >= unix.DM_MAX_TYPE_NAME {
			return nil, fmt.Errorf("target type %q is too long", t.typ)
		}
		hdr.Target_count = 1
		spec := (*unix.DmTargetSpec)(unsafe.Pointer(&buf[unix.SizeofDmIoctl]))
		spec.Sector_start = t.start
		spec.Length = t.length
		spec.Next = uint32(size - unix.SizeofDmIoctl)
		copy(spec.Target_type[:], t.typ)
		copy(buf[unix.SizeofDmIoctl+unix.SizeofDmTargetSpec:], t.params)
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), uintptr(cmd), uintptr(unsafe.Pointer(&buf[0])))
	runtime.KeepAlive(words)
	if errno != 0 {
		return nil, errno
	}
	out := *hdr
	return &out, nil
}

// Cmdline is a verified root as the kernel command line describes it:
//
//	keel.verity.roothash=HEX     the tree's root hash (64 hex digits); its
//	                             presence asks for a verified root
//	keel.verity.hash=PARTLABEL=NAME  the hash partition (or /dev/PATH)
//	keel.verity.salt=HEX         the salt ("-" for none)
//	keel.verity.datablocks=N     data blocks of 4096 bytes
//	keel.verity.corruption=POLICY  restart (default), panic or log
//
// The data partition is keel.root's.
type Cmdline struct {
	RootHash     []byte
	Hash         string
	Salt         []byte
	DataBlocks   uint64
	OnCorruption Policy
}

// ErrNoVerity means the command line asks for no verified root.
var ErrNoVerity = errors.New("no " + layout.CmdlineVerityRootHash + "= on the kernel command line")

// ParseCmdline reads the keel.verity.* keys of a kernel command line. It
// returns ErrNoVerity when keel.verity.roothash is absent, and an error
// naming the key when one is missing or malformed.
func ParseCmdline(cmdline string) (Cmdline, error) {
	var c Cmdline
	var root, salt, blocks string
	seen := map[string]bool{}
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case layout.CmdlineVerityRootHash:
			root = v
		case layout.CmdlineVerityHash:
			c.Hash = v
		case layout.CmdlineVeritySalt:
			salt = v
		case layout.CmdlineVerityDataBlocks:
			blocks = v
		case layout.CmdlineVerityCorruption:
			c.OnCorruption = Policy(v)
		default:
			continue
		}
		seen[k] = true
	}
	if !seen[layout.CmdlineVerityRootHash] {
		return Cmdline{}, ErrNoVerity
	}
	var err error
	if c.RootHash, err = hex.DecodeString(root); err != nil || len(c.RootHash) != 32 {
		return Cmdline{}, fmt.Errorf(layout.CmdlineVerityRootHash+"=%s: want 64 hex digits (SHA-256)", root)
	}
	if !strings.HasPrefix(c.Hash, layout.PartLabel) && !strings.HasPrefix(c.Hash, "/dev/") {
		return Cmdline{}, fmt.Errorf(layout.CmdlineVerityHash+"=%s: want "+layout.PartLabel+"NAME or /dev/PATH", c.Hash)
	}
	if !seen[layout.CmdlineVeritySalt] {
		return Cmdline{}, errors.New(layout.CmdlineVeritySalt + "= is missing (\"-\" for none)")
	}
	if salt != "-" {
		if c.Salt, err = hex.DecodeString(salt); err != nil || len(c.Salt) == 0 || len(c.Salt) > 256 {
			return Cmdline{}, fmt.Errorf(layout.CmdlineVeritySalt+"=%s: want up to 256 bytes in hex, or - for none", salt)
		}
	}
	if c.DataBlocks, err = strconv.ParseUint(blocks, 10, 64); err != nil || c.DataBlocks == 0 || c.DataBlocks > 1<<50 {
		return Cmdline{}, fmt.Errorf(layout.CmdlineVerityDataBlocks+"=%s: want the number of 4096-byte data blocks", blocks)
	}
	if c.OnCorruption == "" {
		c.OnCorruption = DefaultPolicy
	}
	if _, err := ParsePolicy(string(c.OnCorruption)); err != nil {
		return Cmdline{}, fmt.Errorf(layout.CmdlineVerityCorruption+"=%s: want restart, panic or log", c.OnCorruption)
	}
	return c, nil
}

// Target is the verity target over the data device and the hash device
// found for c.Hash.
func (c Cmdline) Target(data, hash string) Target {
	return Target{Data: data, Hash: hash, DataBlocks: c.DataBlocks, HashStart: HashStart, RootHash: c.RootHash, Salt: c.Salt, OnCorruption: c.OnCorruption}
}
