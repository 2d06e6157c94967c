// Package mount finds a data filesystem by label or device and mounts it
// with shared propagation, so containers that bind a parent directory
// with rshared see it.
package mount

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/blockdev"
)

// ErrNotFound is returned when no device carries the label.
var ErrNotFound = errors.New("no device with that label")

// FindByLabel waits up to timeout for a block device whose filesystem
// label is label; sysRoot and devRoot are "/sys" and "/dev" on a live
// system. Waiting covers disks the kernel is still probing.
func FindByLabel(sysRoot, devRoot, label string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		devs, err := blockdev.List(sysRoot, devRoot)
		if err != nil {
			return "", err
		}
		if d, _, ok := blockdev.FindLabel(devs, label); ok {
			return d.Path, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("label %q: %w", label, ErrNotFound)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// IsMountPoint reports whether path is a mount point according to a
// mountinfo table (proc_pid_mountinfo(5)).
func IsMountPoint(mountinfo io.Reader, path string) (bool, error) {
	path = filepath.Clean(path)
	s := bufio.NewScanner(mountinfo)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) > 4 && unescape(f[4]) == path {
			return true, nil
		}
	}
	if err := s.Err(); err != nil {
		return false, fmt.Errorf("read mountinfo: %w", err)
	}
	return false, nil
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mount mounts the ext4 filesystem on dev at path, creating path, and
// makes the mount shared. A path that is already a mount point is left
// as it is, so a restarted container does not stack mounts.
func Mount(dev, path string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("mount %s: %w", path, err)
	}
	mounted, err := IsMountPoint(f, path)
	f.Close()
	if err != nil {
		return fmt.Errorf("mount %s: %w", path, err)
	}
	if mounted {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", path, err)
	}
	if err := unix.Mount(dev, path, "ext4", unix.MS_NOATIME, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, path, err)
	}
	if err := unix.Mount("", path, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", path, err)
	}
	return nil
}
