package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// DiskRoot is a root file system on a disk partition rather than in the
// initramfs, as the kernel command line names it:
//
//	keel.root=PARTLABEL=NAME   the GPT partition named NAME (or /dev/PATH)
//	keel.rootfstype=squashfs   its file system (squashfs or erofs)
//	keel.rootwait=SECONDS      how long to wait for it (default 30)
type DiskRoot struct {
	Source string
	FSType string
	Wait   time.Duration
}

// DefaultRootWait is how long init waits for the root partition when the
// command line does not say: long enough for a slow disk controller under
// emulation, short enough that a wrong keel.root= is reported.
const DefaultRootWait = 30 * time.Second

// ErrNoDiskRoot means the command line names no root partition: the root
// is the initramfs.
var ErrNoDiskRoot = errors.New("no " + layout.CmdlineRoot + "= on the kernel command line")

// ParseDiskRoot reads keel.root, keel.rootfstype and keel.rootwait from a
// kernel command line. It returns ErrNoDiskRoot when keel.root is absent.
func ParseDiskRoot(cmdline string) (DiskRoot, error) {
	r := DiskRoot{Wait: DefaultRootWait}
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case layout.CmdlineRoot:
			r.Source = v
		case layout.CmdlineRootFSType:
			r.FSType = v
		case layout.CmdlineRootWait:
			s, err := strconv.ParseFloat(v, 64)
			if err != nil || !(s >= 0 && s <= 24*3600) { // NaN and Inf too
				return DiskRoot{}, fmt.Errorf(layout.CmdlineRootWait+"=%s: want a number of seconds, at most a day", v)
			}
			r.Wait = time.Duration(s * float64(time.Second))
		}
	}
	switch {
	case r.Source == "":
		return DiskRoot{}, ErrNoDiskRoot
	case !strings.HasPrefix(r.Source, layout.PartLabel) && !strings.HasPrefix(r.Source, "/dev/"):
		return DiskRoot{}, fmt.Errorf(layout.CmdlineRoot+"=%s: want "+layout.PartLabel+"NAME or /dev/PATH", r.Source)
	case r.FSType != "squashfs" && r.FSType != "erofs":
		return DiskRoot{}, fmt.Errorf(layout.CmdlineRootFSType+"=%q: want squashfs or erofs", r.FSType)
	}
	return r, nil
}

// FindBlockDevice looks for source among the block devices the kernel
// lists under sysBlock (/sys/class/block) and returns its device node
// under /dev. PARTLABEL=NAME matches a partition's PARTNAME (its GPT
// name); a /dev path matches the device of that name. ok is false while
// it is not there (yet).
func FindBlockDevice(sysBlock, source string) (dev string, ok bool, err error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", false, fmt.Errorf("listing block devices: %w", err)
	}
	label, byLabel := strings.CutPrefix(source, layout.PartLabel)
	for _, e := range ents {
		ev := readUevent(filepath.Join(sysBlock, e.Name(), "uevent"))
		name := ev["DEVNAME"]
		if name == "" {
			name = e.Name()
		}
		if byLabel && ev["PARTNAME"] == label || !byLabel && "/dev/"+name == source {
			return "/dev/" + name, true, nil
		}
	}
	return "", false, nil
}

// BlockDevices lists the block devices under sysBlock, with their
// partition names, for an error message that shows what there is.
func BlockDevices(sysBlock string) string {
	ents, _ := os.ReadDir(sysBlock)
	var out []string
	for _, e := range ents {
		ev := readUevent(filepath.Join(sysBlock, e.Name(), "uevent"))
		if n := ev["PARTNAME"]; n != "" {
			out = append(out, e.Name()+" ("+n+")")
		} else {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func readUevent(p string) map[string]string {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// WaitBlockDevice polls for source until it appears or wait has passed;
// the error names what it waited for and the devices there were.
func WaitBlockDevice(sysBlock, source string, wait, poll time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		dev, ok, err := FindBlockDevice(sysBlock, source)
		if ok || err != nil {
			return dev, err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("root %s: no such block device after %s (block devices: %s); check "+layout.CmdlineRoot+"= on the kernel command line and that the disk's driver is among the modules",
				source, wait, BlockDevices(sysBlock))
		}
		time.Sleep(poll)
	}
}

// Where the pieces of a root on disk are mounted in the initramfs before
// the switch: the read-only file system, the tmpfs holding the overlay's
// writable layer, and the overlay that becomes /.
const (
	diskRootLower   = "/.keel/lower"
	diskRootRW      = "/.keel/rw"
	diskRootOverlay = "/.keel/root"
)

// SwitchToDiskRoot, run as PID 1 from the initramfs, boots from a root on
// disk: it loads the initramfs's modules (/etc/keel/modules there lists
// those that find and mount the root), waits for the partition the
// command line names, mounts it read-only under a tmpfs-backed overlay,
// frees the initramfs, and makes the overlay / by MS_MOVE and chroot
// before re-executing /init from it. It returns ErrNoDiskRoot when the
// command line names no root partition (nothing has changed then), and
// otherwise returns only on failure.
func SwitchToDiskRoot(logf func(string, ...any)) error {
	if err := os.MkdirAll("/proc", 0o755); err != nil {
		return fmt.Errorf("disk root: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("disk root: mount /proc: %w", err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("disk root: %w", err)
	}
	root, err := ParseDiskRoot(string(cmdline))
	if errors.Is(err, ErrNoDiskRoot) {
		_ = unix.Unmount("/proc", unix.MNT_DETACH)
		return err
	}
	if err != nil {
		return fmt.Errorf("disk root: %w", err)
	}
	for _, m := range []sysMount{
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("disk root: %w", err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("disk root: mount %s: %w", m.target, err)
		}
	}
	n, errs := LoadModules("/" + layout.Modules)
	for _, err := range errs {
		logf("%v", err)
	}
	start := time.Now()
	dev, err := WaitBlockDevice("/sys/class/block", root.Source, root.Wait, 20*time.Millisecond)
	if err != nil {
		return err
	}
	if err := mountDiskRoot(dev, root.FSType); err != nil {
		return fmt.Errorf("root %s (%s): %w", root.Source, dev, err)
	}
	logf("root %s: %s %s mounted read-only under a tmpfs overlay (%d modules, waited %.2fs)", root.Source, root.FSType, dev, n, time.Since(start).Seconds())
	for _, m := range []string{"/dev", "/sys", "/proc"} {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	// The initramfs is RAM that nothing needs any more.
	var st unix.Stat_t
	if err := unix.Lstat("/", &st); err == nil {
		removeTree("/", st.Dev)
	}
	if err := unix.Chdir(diskRootOverlay); err != nil {
		return fmt.Errorf("disk root: %w", err)
	}
	if err := unix.Mount(diskRootOverlay, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("disk root: move to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("disk root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("disk root: %w", err)
	}
	env := append(os.Environ(), SwitchedEnv+"=1")
	if err := unix.Exec("/"+layout.Init, os.Args, env); err != nil {
		return fmt.Errorf("disk root: exec /%s: %w", layout.Init, err)
	}
	return errors.New("disk root: exec returned")
}

// mountDiskRoot mounts dev read-only and an overlay of it with a tmpfs
// upper layer, so the running system can write anywhere (into RAM) while
// the image stays as built.
func mountDiskRoot(dev, fstype string) error {
	for _, d := range []string{diskRootLower, diskRootRW, diskRootOverlay} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount(dev, diskRootLower, fstype, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount %s: %w", fstype, err)
	}
	if err := unix.Mount("tmpfs", diskRootRW, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(diskRootRW, d), 0o755); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + diskRootLower + ",upperdir=" + diskRootRW + "/upper,workdir=" + diskRootRW + "/work"
	if err := unix.Mount("overlay", diskRootOverlay, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay (%s): %w", opts, err)
	}
	return nil
}

// removeTree deletes everything under dir that is on device dev, as
// switch_root does with the initramfs: other file systems mounted below
// (the new root among them) are left alone. Failures are ignored; what
// cannot be deleted only costs memory.
func removeTree(dir string, dev uint64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Dev != dev {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			removeTree(p, dev)
			_ = unix.Rmdir(p)
			continue
		}
		_ = unix.Unlink(p)
	}
}
