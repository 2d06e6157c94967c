package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
}

var propagationFlags = map[string]uintptr{
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseOptions splits OCI mount options into flags, propagation flags
// and the filesystem-specific data string.
func parseOptions(opts []string) (flags uintptr, prop []uintptr, data string) {
	var extra []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
		} else if p, ok := propagationFlags[o]; ok {
			prop = append(prop, p)
		} else {
			extra = append(extra, o)
		}
	}
	return flags, prop, strings.Join(extra, ",")
}

// cloneSharedBinds clones, while / is still a peer of the host's, the
// source of every bind that asks for shared propagation, keyed by its
// index in s.Mounts. A bind made after prepareRoot turns / rslave would be
// a slave of the host mount and, made shared, would start a peer group of
// its own, so a file system mounted under it (the data disk the mount
// service mounts on /var/lib/containerd) would never reach the host. A
// clone taken now stays in the host mount's peer group: what runc's
// rootfsPropagation "shared" arranges, without letting the container's
// other mounts (its root, its /proc) leak out.
func cloneSharedBinds(s *specs.Spec) (map[int]int, error) {
	clones := map[int]int{}
	for i, m := range s.Mounts {
		flags, prop, _ := parseOptions(m.Options)
		if flags&unix.MS_BIND == 0 && m.Type != "bind" || !slices.ContainsFunc(prop, isShared) {
			continue
		}
		how := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
		if flags&unix.MS_REC != 0 {
			how |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, uint(how))
		if err != nil {
			closeClones(clones)
			return nil, fmt.Errorf("bind %s on %s: cloning the shared source: %w", m.Source, m.Destination, err)
		}
		clones[i] = fd
	}
	return clones, nil
}

func isShared(p uintptr) bool { return p&unix.MS_SHARED != 0 }

func closeClones(clones map[int]int) {
	for _, fd := range clones {
		unix.Close(fd)
	}
}

// mountAll performs the spec's mounts under root, in order; clones are
// the binds cloneSharedBinds prepared.
func mountAll(root string, s *specs.Spec, clones map[int]int) error {
	devices, err := hostDevices(s)
	if err != nil {
		return err
	}
	devices = append(append([]specs.LinuxDevice(nil), s.Linux.Devices...), devices...)
	devDone := false
	for i, m := range s.Mounts {
		dst := filepath.Join(root, filepath.Clean("/"+m.Destination))
		flags, prop, data := parseOptions(m.Options)
		isBind := flags&unix.MS_BIND != 0 || m.Type == "bind"
		if isBind {
			flags |= unix.MS_BIND
			if err := makeMountpoint(m.Source, dst); err != nil {
				return fmt.Errorf("mount %s: %w", m.Destination, err)
			}
			if fd, ok := clones[i]; ok {
				err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH)
				unix.Close(fd)
				delete(clones, i)
				if err != nil {
					return fmt.Errorf("bind %s on %s: %w", m.Source, m.Destination, err)
				}
			} else if err := unix.Mount(m.Source, dst, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
				return fmt.Errorf("bind %s on %s: %w", m.Source, m.Destination, err)
			}
			// Bind mounts take their other flags only on a remount.
			if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
				if err := unix.Mount(m.Source, dst, "", rest|unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
					return fmt.Errorf("remounting bind %s: %w", m.Destination, err)
				}
			}
		} else {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("mount %s: %w", m.Destination, err)
			}
			err := unix.Mount(m.Source, dst, m.Type, flags, data)
			if err != nil && m.Type == "mqueue" && errors.Is(err, unix.ENODEV) {
				continue // a kernel without POSIX message queues
			}
			if err != nil {
				return fmt.Errorf("mount %s (%s): %w", m.Destination, m.Type, err)
			}
		}
		for _, p := range prop {
			if err := unix.Mount("", dst, "", p, ""); err != nil {
				return fmt.Errorf("propagation of %s: %w", m.Destination, err)
			}
		}
		if filepath.Clean(m.Destination) == "/dev" && !isBind {
			if err := populateDev(dst, devices); err != nil {
				return err
			}
			devDone = true
		}
	}
	if !devDone && len(devices) > 0 {
		if err := populateDev(filepath.Join(root, "dev"), devices); err != nil {
			return err
		}
	}
	return nil
}

func makeMountpoint(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.MkdirAll(dst, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// defaultDevices are what an OCI runtime must provide.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// populateDev fills a fresh /dev tmpfs: the default nodes, the
// configured devices and the usual symlinks.
func populateDev(dev string, devices []specs.LinuxDevice) error {
	for _, d := range append(append([]specs.LinuxDevice(nil), defaultDevices...), devices...) {
		rel := strings.TrimPrefix(filepath.Clean(d.Path), "/dev/")
		p := filepath.Join(dev, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(d.FileMode.Perm())
		}
		typ := uint32(unix.S_IFCHR)
		if d.Type == "b" {
			typ = unix.S_IFBLK
		}
		_ = os.Remove(p)
		if err := unix.Mknod(p, typ|mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
		// mknod honours the umask; the node must have exactly mode.
		if err := unix.Chmod(p, mode); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
		if d.UID != nil || d.GID != nil {
			uid, gid := -1, -1
			if d.UID != nil {
				uid = int(*d.UID)
			}
			if d.GID != nil {
				gid = int(*d.GID)
			}
			if err := os.Lchown(p, uid, gid); err != nil {
				return fmt.Errorf("device %s: %w", d.Path, err)
			}
		}
	}
	for link, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore",
	} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("/dev/%s: %w", link, err)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
