package boot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/spec"
)

// Volume is one of the image's volumes, as spec.VolumesFile lists them.
type Volume struct {
	Name string
	Size int64 // bytes: the tmpfs that stands in when no disk holds it
}

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
		if !ok || err != nil || n <= 0 || spec.CheckName(name) != nil {
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

// probeSize is how much of a partition must be zero for init to take it
// as never formatted: the area where any file system's superblock or a
// partition table would be.
const probeSize = 1 << 20

// What a volume's partition holds, from its first probeSize bytes.
type content int

const (
	contentEmpty content = iota // all zeros: never formatted
	contentExt4                 // an ext2/3/4 superblock
	contentOther                // anything else: someone's data
)

// ext4 superblock: at byte 1024, magic 0xEF53 at 0x38, label at 0x78.
const (
	ext4Super      = 1024
	ext4MagicOff   = ext4Super + 0x38
	ext4LabelOff   = ext4Super + 0x78
	ext4LabelLen   = 16
	ext4MagicLow   = 0x53
	ext4MagicHigh  = 0xEF
	ext4SuperBytes = ext4Super + 1024
)

func probe(b []byte) content {
	if len(b) >= ext4SuperBytes && b[ext4MagicOff] == ext4MagicLow && b[ext4MagicOff+1] == ext4MagicHigh {
		return contentExt4
	}
	if bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
		return contentOther
	}
	return contentEmpty
}

// ext4Label returns the label of the ext4 file system b starts with.
func ext4Label(b []byte) (string, bool) {
	if probe(b) != contentExt4 {
		return "", false
	}
	l := b[ext4LabelOff : ext4LabelOff+ext4LabelLen]
	if i := bytes.IndexByte(l, 0); i >= 0 {
		l = l[:i]
	}
	return string(l), true
}

func readStart(dev string, n int) ([]byte, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return b[:m], nil
}

// findVolume returns the device holding the volume name: the partition
// named name (the GPT name keel gives it on every disk format), else a
// block device whose ext4 file system is labelled name (a disk prepared
// for an image without a disk of its own, such as an initramfs or ISO
// boot).
func findVolume(sysBlock, devDir, name string) (string, bool) {
	if dev, ok, _ := FindBlockDevice(sysBlock, "PARTLABEL="+name); ok {
		return dev, true
	}
	label := name
	if len(label) > ext4LabelLen {
		label = label[:ext4LabelLen]
	}
	ents, _ := os.ReadDir(sysBlock)
	for _, e := range ents {
		dev := filepath.Join(devDir, e.Name())
		b, err := readStart(dev, ext4SuperBytes)
		if err != nil {
			continue
		}
		if l, ok := ext4Label(b); ok && l == label {
			return dev, true
		}
	}
	return "", false
}

// MountVolumes mounts every volume of the image at spec.VolumePath before
// any container starts. A volume's partition that is all zeros is
// formatted ext4 first (its first boot); one holding ext4 is mounted as it
// is, never formatted again; one holding anything else is left alone.
// A volume no disk holds gets a tmpfs of its size, with a warning on the
// console: its data does not survive a power-off. Problems are reported
// through logf; boot goes on.
func MountVolumes(logf func(string, ...any)) {
	vols, err := ReadVolumes(spec.VolumesFile)
	if err != nil {
		logf("%v", err)
	}
	deadline := time.Now().Add(VolumeWait)
	for _, v := range vols {
		dir := spec.VolumePath(v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			logf("volume %s: %v", v.Name, err)
			continue
		}
		dev, ok := findVolume("/sys/class/block", "/dev", v.Name)
		for !ok && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			dev, ok = findVolume("/sys/class/block", "/dev", v.Name)
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
	b, err := readStart(dev, probeSize)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	switch probe(b) {
	case contentOther:
		return fmt.Errorf("%s holds data that is not an ext4 file system: left alone", dev)
	case contentEmpty:
		start := time.Now()
		if err := mkfs(dev, v.Name); err != nil {
			return fmt.Errorf("formatting %s: %w", dev, err)
		}
		logf("volume %s: formatted %s as ext4 (first boot) in %.1fs", v.Name, dev, time.Since(start).Seconds())
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mounting %s (ext4): %w", dev, err)
	}
	logf("volume %s: %s mounted on %s", v.Name, dev, dir)
	return nil
}

// mkfs runs the image's mke2fs (spec.MkfsDir) chrooted in its directory,
// with the machine's /dev and /proc bound there for the time it runs.
func mkfs(dev, label string) error {
	var binds []string
	defer func() {
		for i := len(binds) - 1; i >= 0; i-- {
			_ = unix.Unmount(binds[i], unix.MNT_DETACH)
		}
	}()
	for _, d := range []string{"/dev", "/proc"} {
		target := filepath.Join(spec.MkfsDir, d)
		if err := unix.Mount(d, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s into %s: %w", d, spec.MkfsDir, err)
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
	cmd.SysProcAttr = &unix.SysProcAttr{Chroot: spec.MkfsDir}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mke2fs: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
