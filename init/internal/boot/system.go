package boot

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

type sysMount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var systemMounts = []sysMount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"shm", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
}

// MountSystem mounts /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /tmp and
// cgroup2, delegates the cpu, memory and pids controllers, and makes /
// shared so containers' binds can propagate. Mounts already present are
// kept. It returns every failure but goes on after each.
func MountSystem() []error {
	var errs []error
	for _, m := range systemMounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("mkdir %s: %w", m.target, err))
			continue
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.target, err))
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		errs = append(errs, fmt.Errorf("making / shared: %w", err))
	}
	for _, d := range []string{"/" + layout.LogDir, layout.RunDir, "/sys/fs/cgroup" + layout.CgroupParent} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// LoadModules loads the modules listed in file (one absolute path per
// line, dependencies first). Compressed modules (.xz, .zst, .gz) are
// decompressed in memory. A module already loaded is fine; one that fails
// is reported and loading goes on.
func LoadModules(file string) (loaded int, errs []error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, []error{fmt.Errorf("modules: %w", err)}
	}
	for _, line := range strings.Split(string(data), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		// After the switch from an initramfs that loaded the root's
		// modules, those are loaded already: reading them again from
		// disk would only cost boot time.
		if moduleLoaded(p) {
			loaded++
			continue
		}
		if err := loadModule(p); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("module %s: %w", p, err))
			continue
		}
		loaded++
	}
	return loaded, errs
}

// moduleLoaded reports whether the module in file p is loaded: the
// kernel lists it under /sys/module by its name, the file's base name
// with dashes as underscores.
func moduleLoaded(p string) bool {
	name := filepath.Base(p)
	if i := strings.Index(name, ".ko"); i > 0 {
		name = name[:i]
	}
	_, err := os.Stat(filepath.Join("/sys/module", strings.ReplaceAll(name, "-", "_"), "initstate"))
	return err == nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader
	switch filepath.Ext(path) {
	case ".ko":
		return unix.FinitModule(int(f.Fd()), "", 0)
	case ".xz":
		r, err = xz.NewReader(bufio.NewReader(f))
	case ".zst":
		var d *zstd.Decoder
		d, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err == nil {
			defer d.Close()
			r = d
		}
	case ".gz":
		r, err = gzip.NewReader(f)
	default:
		return fmt.Errorf("unknown module file type")
	}
	if err != nil {
		return err
	}
	image, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return unix.InitModule(image, "")
}

// LoopbackUp brings lo up.
func LoopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	return nil
}

// Hostname is the content of file (/etc/hostname) if it names one, else
// "keel-" and the last three bytes of the first non-loopback MAC address
// (in interface index order), else "keel".
func Hostname(file string) string {
	if b, err := os.ReadFile(file); err == nil {
		if h := strings.TrimSpace(string(b)); h != "" {
			return h
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "keel"
	}
	sort.Slice(ifaces, func(i, j int) bool { return ifaces[i].Index < ifaces[j].Index })
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback != 0 || len(i.HardwareAddr) < 3 {
			continue
		}
		mac := i.HardwareAddr
		return fmt.Sprintf("keel-%x", []byte(mac[len(mac)-3:]))
	}
	return "keel"
}

// SetHostname sets the kernel's host name.
func SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("hostname %s: %w", name, err)
	}
	return nil
}

// SeedRlimits raises the open-file limit that every container inherits
// unless it sets its own. syscall.Setrlimit also tells the Go runtime not
// to restore its start-up value in children.
func SeedRlimits() error {
	files := uint64(1 << 20)
	// The kernel refuses more than fs.nr_open, which may be set lower.
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < files {
			files = n
		}
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: files, Max: files}); err != nil {
		return fmt.Errorf("rlimit nofile: %w", err)
	}
	return nil
}

// DisableCtrlAltDel makes the kernel send SIGINT to PID 1 on
// Ctrl-Alt-Del instead of rebooting at once.
func DisableCtrlAltDel() error {
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		return fmt.Errorf("ctrl-alt-del: %w", err)
	}
	return nil
}

var (
	uptimeOnce sync.Once
	uptimeFile *os.File
)

// Uptime is the seconds since boot, as /proc/uptime says. The file stays
// open, so the shutdown-done milestone still has a time after /proc is
// (lazily) unmounted.
func Uptime() string {
	uptimeOnce.Do(func() { uptimeFile, _ = os.Open("/proc/uptime") })
	if uptimeFile == nil {
		return "0.00"
	}
	buf := make([]byte, 64)
	n, _ := uptimeFile.ReadAt(buf, 0)
	f := strings.Fields(string(buf[:n]))
	if len(f) == 0 {
		return "0.00"
	}
	return f[0]
}

// Milestone prints the console contract line `keel: milestone NAME UPTIME`.
func Milestone(w io.Writer, name string) {
	fmt.Fprintf(w, "keel: milestone %s %s\n", name, Uptime())
}

// CmdlineFlag reports whether key=1 (or a bare key) is on the kernel
// command line at path (/proc/cmdline).
func CmdlineFlag(path, key string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(b)) {
		if f == key || f == key+"=1" {
			return true
		}
	}
	return false
}

// Input event constants from linux/input-event-codes.h.
const (
	evKey    = 1
	keyPower = 116
)

// WatchPowerButton calls pressed for every KEY_POWER press on any
// /dev/input/event* device (the ACPI button driver's, which QEMU's
// system_powerdown presses), rescanning for new devices every few seconds
// until stop is closed.
func WatchPowerButton(pressed func(), stop <-chan struct{}, logf func(string, ...any)) {
	watched := map[string]bool{}
	for {
		paths, _ := filepath.Glob("/dev/input/event*")
		for _, p := range paths {
			if watched[p] {
				continue
			}
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			watched[p] = true
			go watchEvents(f, pressed, logf)
		}
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Second):
		}
	}
}

func watchEvents(f *os.File, pressed func(), logf func(string, ...any)) {
	defer f.Close()
	defer func() {
		if p := recover(); p != nil {
			logf("power button watcher: recovered panic: %v", p)
		}
	}()
	// struct input_event: a timeval (two longs), u16 type, u16 code, s32 value.
	size := 2*strconv.IntSize/8 + 8
	buf := make([]byte, size*16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+size <= n; off += size {
			ev := buf[off+size-8 : off+size]
			typ := binary.LittleEndian.Uint16(ev[0:])
			code := binary.LittleEndian.Uint16(ev[2:])
			value := int32(binary.LittleEndian.Uint32(ev[4:]))
			if typ == evKey && code == keyPower && value == 1 {
				pressed()
			}
		}
	}
}

// UnmountAll unmounts every filesystem but /, the most recently mounted
// first, lazily when one is busy. It returns the ones that failed.
func UnmountAll() []error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []error{fmt.Errorf("mountinfo: %w", err)}
	}
	var targets []string
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) > 4 && f[4] != "/" {
			targets = append(targets, unescapeMount(f[4]))
		}
	}
	var errs []error
	for i := len(targets) - 1; i >= 0; i-- {
		t := targets[i]
		err := unix.Unmount(t, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(t, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", t, err))
		}
	}
	return errs
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				out = append(out, v)
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}
