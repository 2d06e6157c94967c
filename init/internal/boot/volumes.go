package boot

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/blockdev"
	"github.com/keelos/keel/internal/layout"
)

// ext4LabelLen is the size of an ext4 label: mke2fs keeps the first 16
// bytes of a longer volume name.
const ext4LabelLen = 16

// Volume is one of the image's volumes, as layout.VolumesFile lists them.
type Volume struct {
	Name string
	Size int64 // bytes: the tmpfs that stands in when no disk holds it
}

// volumeName is the spec's rule for a name, checked again on what the
// image says.
var volumeName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ReadVolumes reads the list of volumes the builder wrote; a missing file
// is an image without volumes.
func ReadVolumes(path string) ([]Volume, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	defer f.Close()
	var out []Volume
	s := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for s.Scan() {
		name, size, ok := strings.Cut(s.Text(), " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if !ok || err != nil || n <= 0 || !volumeName.MatchString(name) {
			return nil, fmt.Errorf("volumes: %s: bad line %q", path, s.Text())
		}
		out = append(out, Volume{Name: name, Size: n})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("volumes: %s: %w", path, err)
	}
	return out, nil
}

// VolumeWait is how long init waits, for all volumes together, for their
// partitions to appear: the disk it booted from is there by then, and a
// machine without one (an initramfs or ISO boot) is not held up long.
const VolumeWait = 5 * time.Second

// findVolume returns the device holding the volume name: the partition
// named name (the GPT name keel gives it on every disk format), else a
// block device whose ext4 file system is labelled name (a disk prepared
// for an image without a disk of its own, such as an initramfs or ISO
// boot).
func findVolume(sysRoot, devRoot, name string) (string, bool) {
	if dev, ok, _ := FindBlockDevice(filepath.Join(sysRoot, "class", "block"), "PARTLABEL="+name); ok {
		return dev, true
	}
	label := name
	if len(label) > ext4LabelLen {
		label = label[:ext4LabelLen]
	}
	devs, err := blockdev.List(sysRoot, devRoot)
	if err != nil {
		return "", false
	}
	for _, d := range devs {
		if r, err := blockdev.ProbeFile(d.Path); err == nil && r.Kind == blockdev.Ext4 && r.Label == label {
			return d.Path, true
		}
	}
	return "", false
}

// MountVolumes mounts every volume of the image at layout.VolumePath before
// any container starts. A volume's partition that is all zeros is
// formatted ext4 first (its first boot); one holding ext4 is mounted as it
// is, never formatted again; one holding anything else is left alone.
// A volume no disk holds gets a tmpfs of its size, with a warning on the
// console: its data does not survive a power-off. Problems are reported
// through logf; boot goes on.
func MountVolumes(logf func(string, ...any)) {
	vols, err := ReadVolumes(layout.VolumesFile)
	if err != nil {
		logf("%v", err)
	}
	deadline := time.Now().Add(VolumeWait)
	for _, v := range vols {
		dir := layout.VolumePath(v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			logf("volume %s: %v", v.Name, err)
			continue
		}
		dev, ok := findVolume("/sys", "/dev", v.Name)
		for !ok && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			dev, ok = findVolume("/sys", "/dev", v.Name)
		}
		if !ok {
			logf("warning: volume %s: no partition named %q and no ext4 file system labelled so (block devices: %s): a tmpfs of %d bytes stands in, and its data is lost at power-off",
				v.Name, v.Name, BlockDevices("/sys/class/block"), v.Size)
			mountTmpfs(v, dir, logf)
			continue
		}
		if err := mountVolume(v, dev, dir, logf); err != nil {
			logf("warning: volume %s: %v: a tmpfs of %d bytes stands in, and its data is lost at power-off", v.Name, err, v.Size)
			mountTmpfs(v, dir, logf)
		}
	}
}

func mountTmpfs(v Volume, dir string, logf func(string, ...any)) {
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", v.Size)); err != nil {
		logf("volume %s: tmpfs on %s: %v", v.Name, dir, err)
	}
}

// mountVolume formats dev when it is empty and mounts it on dir.
func mountVolume(v Volume, dev, dir string, logf func(string, ...any)) error {
	r, err := blockdev.ProbeFile(dev)
	if err != nil {
		return err
	}
	switch r.Kind {
	case blockdev.Ext4:
	case blockdev.Empty:
		start := time.Now()
		if err := mkfs(dev, v.Name); err != nil {
			return fmt.Errorf("formatting %s: %w", dev, err)
		}
		logf("volume %s: formatted %s as ext4 (first boot) in %.1fs", v.Name, dev, time.Since(start).Seconds())
	default:
		return fmt.Errorf("%s holds %s, not ext4: left alone", dev, r.Kind)
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mounting %s (ext4): %w", dev, err)
	}
	logf("volume %s: %s mounted on %s", v.Name, dev, dir)
	return nil
}

// mkfs runs the image's mke2fs (layout.MkfsDir) chrooted in its directory,
// with the machine's /dev and /proc bound there for the time it runs.
func mkfs(dev, label string) error {
	var binds []string
	defer func() {
		for i := len(binds) - 1; i >= 0; i-- {
			_ = unix.Unmount(binds[i], unix.MNT_DETACH)
		}
	}()
	for _, d := range []string{"/dev", "/proc"} {
		target := filepath.Join(layout.MkfsDir, d)
		if err := unix.Mount(d, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s into %s: %w", d, layout.MkfsDir, err)
		}
		binds = append(binds, target)
	}
	if len(label) > ext4LabelLen {
		label = label[:ext4LabelLen]
	}
	// The partition was found all zeros: lazy initialisation leaves the
	// inode tables and the journal, zero already, to the kernel, so the
	// first boot does not write them in full.
	cmd := exec.Command("/sbin/mke2fs", "-q", "-F", "-t", "ext4", "-L", label,
		"-E", "lazy_itable_init=1,lazy_journal_init=1", dev)
	cmd.Env = []string{"PATH=/sbin:/usr/sbin:/bin:/usr/bin"}
	cmd.SysProcAttr = &unix.SysProcAttr{Chroot: layout.MkfsDir}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mke2fs: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
