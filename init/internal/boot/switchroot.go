// Package boot brings the machine up to the point where containers can
// run, and takes it down again: leaving the initramfs, system mounts,
// kernel modules, loopback, hostname, limits, the power button, and the
// final unmount.
package boot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// SwitchedEnv marks an init re-executed after leaving the initramfs.
const SwitchedEnv = "KEEL_SWITCHED_ROOT"

// NeedsSwitchRoot reports whether / is the kernel's initial rootfs
// (ramfs or tmpfs, and no switch done yet): pivot_root, which every
// container needs, cannot work from it.
func NeedsSwitchRoot() (bool, error) {
	if os.Getenv(SwitchedEnv) == "1" {
		return false, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false, fmt.Errorf("statfs /: %w", err)
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC, nil
}

// SwitchRoot moves the whole root into a fresh tmpfs, makes that / (by
// MS_MOVE and chroot, as switch_root does) and re-executes /init there.
// It returns only on failure.
func SwitchRoot() error {
	const newRoot = "/.keel-root"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Mount("rootfs", newRoot, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("switch root: tmpfs: %w", err)
	}
	if err := Move("/", newRoot); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	env := append(os.Environ(), SwitchedEnv+"=1")
	if err := unix.Exec("/"+layout.Init, os.Args, env); err != nil {
		return fmt.Errorf("switch root: exec /%s: %w", layout.Init, err)
	}
	return errors.New("switch root: exec returned")
}

// Move copies the tree at src into dst, preserving modes, owners, times,
// symlinks, hard links, device nodes and extended attributes, and deletes
// each file from src once copied so that a RAM-backed source and its
// copy never both exist in full. Other filesystems mounted under src, and
// dst itself, are left alone.
func Move(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("move %s: %w", src, err)
	}
	var dstSt unix.Stat_t
	if err := unix.Lstat(dst, &dstSt); err != nil {
		return fmt.Errorf("move %s: %w", dst, err)
	}
	m := &mover{dev: st.Dev, skip: fileID{dstSt.Dev, dstSt.Ino}, links: map[fileID]string{}}
	if err := m.dir(src, dst); err != nil {
		return err
	}
	return copyMeta(src, dst, &st)
}

type fileID struct{ dev, ino uint64 }

type mover struct {
	dev   uint64
	skip  fileID
	links map[fileID]string
}

func (m *mover) dir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("move %s: %w", src, err)
	}
	for _, e := range entries {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(s, &st); err != nil {
			return fmt.Errorf("move %s: %w", s, err)
		}
		id := fileID{st.Dev, st.Ino}
		if id == m.skip {
			continue
		}
		if st.Dev != m.dev {
			// A mount point (e.g. /proc): keep an empty directory.
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := os.Mkdir(d, os.FileMode(st.Mode&0o777)); err != nil && !os.IsExist(err) {
					return fmt.Errorf("move %s: %w", s, err)
				}
			}
			continue
		}
		if err := m.entry(s, d, &st, id); err != nil {
			return err
		}
	}
	return nil
}

func (m *mover) entry(s, d string, st *unix.Stat_t, id fileID) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
			return fmt.Errorf("move %s: %w", s, err)
		}
		if err := m.dir(s, d); err != nil {
			return err
		}
		if err := copyMeta(s, d, st); err != nil {
			return err
		}
		_ = unix.Rmdir(s) // best effort: a mount point stays
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(s)
		if err != nil {
			return fmt.Errorf("move %s: %w", s, err)
		}
		if err := os.Symlink(target, d); err != nil {
			return fmt.Errorf("move %s: %w", s, err)
		}
	default:
		// Look up even when Nlink is 1: the other names may be moved already.
		if first, ok := m.links[id]; ok {
			if err := os.Link(first, d); err != nil {
				return fmt.Errorf("move %s: %w", s, err)
			}
			return unlink(s)
		}
		if st.Nlink > 1 {
			m.links[id] = d
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			if err := copyFile(s, d); err != nil {
				return err
			}
		} else if err := unix.Mknod(d, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("move %s: %w", s, err)
		}
	}
	if err := copyMeta(s, d, st); err != nil {
		return err
	}
	return unlink(s)
}

func unlink(p string) error {
	if err := unix.Unlink(p); err != nil {
		return fmt.Errorf("move: removing %s: %w", p, err)
	}
	return nil
}

func copyFile(s, d string) error {
	in, err := os.Open(s)
	if err != nil {
		return fmt.Errorf("move %s: %w", s, err)
	}
	defer in.Close()
	out, err := os.OpenFile(d, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("move %s: %w", s, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("move %s: %w", s, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("move %s: %w", s, err)
	}
	return nil
}

// copyMeta gives d the owner, xattrs, mode and times of s (st), in that
// order: chown clears setuid bits, so the mode comes after it.
func copyMeta(s, d string, st *unix.Stat_t) error {
	if err := unix.Lchown(d, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("move %s: chown: %w", s, err)
	}
	if err := copyXattrs(s, d); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(d, st.Mode&0o7777); err != nil {
			return fmt.Errorf("move %s: chmod: %w", s, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, d, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("move %s: times: %w", s, err)
	}
	return nil
}

func copyXattrs(s, d string) error {
	size, err := unix.Llistxattr(s, nil)
	if err != nil || size <= 0 {
		return nil // no xattr support or none set
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(s, buf)
	if err != nil {
		return nil
	}
	for _, name := range splitNull(buf[:size]) {
		n, err := unix.Lgetxattr(s, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(s, name, val); err != nil {
			continue
		}
		if err := unix.Lsetxattr(d, name, val[:n], 0); err != nil {
			return fmt.Errorf("move %s: xattr %s: %w", s, name, err)
		}
	}
	return nil
}

func splitNull(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
