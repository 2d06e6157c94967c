// Package format formats a data disk once: it refuses any device that
// holds a filesystem, a partition table or stray data, so running it on
// every boot is safe.
package format

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/keelos/keel/internal/blockdev"
)

// ErrInUse is returned (wrapped) when a device already holds something.
var ErrInUse = errors.New("device is not empty")

// ErrNoDisk is returned when no device is free to format.
var ErrNoDisk = errors.New("no empty virtio disk")

// Options select the filesystem written.
type Options struct {
	Type  string // only "ext4"
	Label string
	// Mkfs is the mkfs.ext4 program; empty finds it on PATH, /sbin, /usr/sbin.
	Mkfs string
}

// PickDisk returns the first virtio disk (vd*) that has no partitions
// and whose first MiB is all zeros.
func PickDisk(devs []blockdev.Device) (blockdev.Device, error) {
	for _, d := range devs {
		if d.Partition || d.Partitions > 0 || !strings.HasPrefix(d.Name, "vd") {
			continue
		}
		r, err := blockdev.ProbeFile(d.Path)
		if err != nil || r.Kind != blockdev.Empty {
			continue
		}
		return d, nil
	}
	return blockdev.Device{}, ErrNoDisk
}

// Format writes a filesystem on dev, a block device or an image file,
// unless anything is already there.
func Format(dev string, o Options) error {
	if o.Type == "" {
		o.Type = "ext4"
	}
	if o.Type != "ext4" {
		return fmt.Errorf("format %s: unsupported filesystem type %q", dev, o.Type)
	}
	r, err := blockdev.ProbeFile(dev)
	if err != nil {
		return fmt.Errorf("format %s: %w", dev, err)
	}
	if r.Kind != blockdev.Empty {
		return fmt.Errorf("format %s: %w: found %s %q", dev, ErrInUse, r.Kind, r.Label)
	}
	mkfs := o.Mkfs
	if mkfs == "" {
		if mkfs, err = findMkfs(); err != nil {
			return fmt.Errorf("format %s: %w", dev, err)
		}
	}
	args := []string{"-F", "-q"}
	if o.Label != "" {
		args = append(args, "-L", o.Label)
	}
	// Lazy init leaves the inode tables and journal to the kernel's
	// background thread, so the first boot does not wait on a big disk.
	args = append(args, "-E", "lazy_itable_init=1,lazy_journal_init=1", dev)
	out, err := exec.Command(mkfs, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("format %s: %s: %w: %s", dev, mkfs, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func findMkfs() (string, error) {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mkfs.ext4 not found")
}
