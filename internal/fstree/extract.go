package fstree

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ExtractDir extracts a tar stream into the directory root (created if
// missing). Nothing is ever written outside root, whatever the archive
// holds: every path is resolved with openat2(RESOLVE_IN_ROOT), so ".."
// stops at root, absolute symlinks mean root, and symlinked parents are
// followed inside it (kernels without openat2 get the same walk done
// component by component with O_NOFOLLOW). Entries climbing out with "..",
// hard links to missing files, and whiteouts are handled as in ApplyTar.
// Ownership is set only when allowed: EPERM from chown is not an error,
// so an unprivileged caller gets files owned by itself.
func ExtractDir(root string, r io.Reader, opts ApplyOptions) error {
	return extractDir(root, r, opts, false)
}

type extractor struct {
	rootfd  int
	opts    ApplyOptions
	manual  bool            // no openat2: resolve paths by hand
	written map[string]bool // paths this archive wrote, safe from its whiteouts
	dirs    []dirMeta
}

type dirMeta struct {
	path     string
	mode     uint32
	uid, gid int
	hdr      *tar.Header
}

func extractDir(root string, r io.Reader, opts ApplyOptions, manual bool) (err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("extract: open %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	x := &extractor{rootfd: rootfd, opts: opts, manual: manual, written: map[string]bool{}}
	if !manual {
		fd, err := x.openat2(".", unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOSYS) {
			x.manual = true
		} else if err != nil {
			return fmt.Errorf("extract: %w", err)
		} else {
			unix.Close(fd)
		}
	}
	if err := x.run(tar.NewReader(r)); err != nil {
		return fmt.Errorf("extract to %s: %w", root, err)
	}
	return nil
}

func (x *extractor) run(tr *tar.Reader) error {
	type link struct{ path, target string }
	var pending []link
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		p, err := cleanPath(hdr.Name)
		if err != nil {
			return fmt.Errorf("tar entry: %w", err)
		}
		if p == "" || x.opts.Filter != nil && !x.opts.Filter(p) {
			continue
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if strings.HasPrefix(base, whiteoutPrefix) {
			if err := x.whiteout(dir, base); err != nil {
				return fmt.Errorf("whiteout %s: %w", p, err)
			}
			continue
		}
		if hdr.Typeflag == tar.TypeLink {
			target, err := cleanPath(hdr.Linkname)
			if err != nil || target == "" {
				return fmt.Errorf("hard link %s to %q: %w", p, hdr.Linkname, ErrUnsafePath)
			}
			done, err := x.hardlink(p, target, false)
			if err != nil {
				return err
			}
			if !done {
				pending = append(pending, link{p, target})
			}
			x.written[p] = true
			continue
		}
		if err := x.entry(p, dir, base, hdr, tr); err != nil {
			return fmt.Errorf("tar entry %s: %w", p, err)
		}
	}
	for _, l := range pending {
		if _, err := x.hardlink(l.path, l.target, true); err != nil {
			return err
		}
	}
	// Directory modes last: a read-only directory must not stop its
	// children from being written.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		if err := x.finishDir(x.dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) entry(p, dir, base string, hdr *tar.Header, content io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink:
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !x.opts.AllowDevices {
			return nil
		}
	default:
		return nil
	}
	dirfd, err := x.resolveDir(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	mode := uint32(hdr.Mode & 0o7777)
	if hdr.Typeflag == tar.TypeDir {
		var st unix.Stat_t
		err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := removeAt(dirfd, base); err != nil {
				return err
			}
		}
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Mkdirat(dirfd, base, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
		x.dirs = append(x.dirs, dirMeta{path: p, mode: mode, uid: hdr.Uid, gid: hdr.Gid, hdr: hdr})
		x.written[p] = true
		return nil
	}
	if err := removeAt(dirfd, base); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, dirfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		if err := chownOK(unix.Fchownat(dirfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(dirfd, base, kind|mode&0o777, int(dev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		if err := chownOK(unix.Fchownat(dirfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
			return err
		}
	default:
		fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		f := os.NewFile(uintptr(fd), p)
		_, err = io.Copy(f, content)
		if err == nil {
			err = x.fileMeta(fd, hdr, mode)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeFifo {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if err := unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set mtime: %w", err)
		}
	}
	x.written[p] = true
	return nil
}

// fileMeta sets owner, mode (after chown, which clears setuid) and xattrs
// on an open file or directory.
func (x *extractor) fileMeta(fd int, hdr *tar.Header, mode uint32) error {
	if err := chownOK(unix.Fchown(fd, hdr.Uid, hdr.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok {
			continue
		}
		// security.* and trusted.* need privileges or filesystem support
		// that an extraction for inspection can do without.
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil &&
			!errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

func chownOK(err error) error {
	if err == nil || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return fmt.Errorf("chown: %w", err)
}

func (x *extractor) finishDir(d dirMeta) error {
	fd, err := x.open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return nil // replaced or removed by a later entry
	}
	if err != nil {
		return fmt.Errorf("directory %s: %w", d.path, err)
	}
	defer unix.Close(fd)
	if err := x.fileMeta(fd, d.hdr, d.mode); err != nil {
		return fmt.Errorf("directory %s: %w", d.path, err)
	}
	tv := []unix.Timeval{unix.NsecToTimeval(d.hdr.ModTime.UnixNano()), unix.NsecToTimeval(d.hdr.ModTime.UnixNano())}
	if err := unix.Futimes(fd, tv); err != nil {
		return fmt.Errorf("directory %s: set mtime: %w", d.path, err)
	}
	return nil
}

// hardlink links p to target, both inside root. With final false, a
// missing target is reported as not done, to retry after the stream.
func (x *extractor) hardlink(p, target string, final bool) (bool, error) {
	tdir, tbase := path.Split(target)
	tfd, err := x.resolveDir(strings.TrimSuffix(tdir, "/"), false)
	if errors.Is(err, unix.ENOENT) && !final {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("hard link %s to %s: %w", p, target, err)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) && !final {
			return false, nil
		}
		return false, fmt.Errorf("hard link %s to %s: %w", p, target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return false, fmt.Errorf("hard link %s to directory %s refused", p, target)
	}
	dir, base := path.Split(p)
	dirfd, err := x.resolveDir(strings.TrimSuffix(dir, "/"), true)
	if err != nil {
		return false, fmt.Errorf("hard link %s: %w", p, err)
	}
	defer unix.Close(dirfd)
	if err := removeAt(dirfd, base); err != nil {
		return false, fmt.Errorf("hard link %s: %w", p, err)
	}
	// No AT_SYMLINK_FOLLOW: a symlink target is linked itself, never followed.
	if err := unix.Linkat(tfd, tbase, dirfd, base, 0); err != nil {
		return false, fmt.Errorf("hard link %s to %s: %w", p, target, err)
	}
	return true, nil
}

func (x *extractor) whiteout(dir, base string) error {
	dirfd, err := x.resolveDir(dir, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	if base == whiteoutOpaque {
		_, err := x.pruneChildren(dirfd, dir)
		return err
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	_, err = x.prune(dirfd, name, path.Join(dir, name), x.written)
	return err
}

// prune removes name (at rel) from the directory dirfd, except what keep
// holds, and reports whether name itself is gone.
func (x *extractor) prune(dirfd int, name, rel string, keep map[string]bool) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if keep[rel] {
			return false, nil
		}
		return true, unix.Unlinkat(dirfd, name, 0)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	empty, err := x.pruneChildrenOf(fd, rel, keep)
	unix.Close(fd)
	if err != nil || !empty || keep[rel] {
		return false, err
	}
	return true, unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

func (x *extractor) pruneChildren(dirfd int, rel string) (bool, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	return x.pruneChildrenOf(fd, rel, x.written)
}

// pruneChildrenOf prunes every child of the open directory fd and reports
// whether it is left empty.
func (x *extractor) pruneChildrenOf(fd int, rel string, keep map[string]bool) (bool, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(dup), rel)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return false, err
	}
	empty := true
	for _, n := range names {
		gone, err := x.prune(fd, n, path.Join(rel, n), keep)
		if err != nil {
			return false, err
		}
		empty = empty && gone
	}
	return empty, nil
}

// removeAt removes name from dirfd, a directory with all its content; a
// missing name is fine.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	x := &extractor{}
	if _, err := x.prune(dirfd, name, name, nil); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// resolveDir returns an O_PATH descriptor of the directory rel, resolved
// inside root; with create, missing directories are made (0755), through
// dangling symlinks too, as securejoin's MkdirAll does.
func (x *extractor) resolveDir(rel string, create bool) (int, error) {
	if rel == "" {
		rel = "."
	}
	fd, err := x.open(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || !create || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	if err := x.mkdirAll(rel, 0); err != nil {
		return -1, err
	}
	return x.open(rel, unix.O_PATH|unix.O_DIRECTORY)
}

// mkdirAll creates the missing directories of rel inside root. rel is
// not cleaned lexically: the kernel (or openManual) resolves each prefix,
// so "link/.." means the parent of where link leads.
func (x *extractor) mkdirAll(rel string, depth int) error {
	if depth > maxLinkFollows {
		return unix.ELOOP
	}
	parent := "."
	for _, c := range splitPath(rel) {
		if c == "" {
			continue
		}
		cur := parent + "/" + c
		fd, err := x.open(cur, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil {
			unix.Close(fd)
			parent = cur
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w", cur, err)
		}
		pfd, err := x.open(parent, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("%s: %w", parent, err)
		}
		err = unix.Mkdirat(pfd, c, 0o755)
		if errors.Is(err, unix.EEXIST) {
			// A dangling symlink: create where it leads, inside root.
			buf := make([]byte, unix.PathMax)
			n, rerr := unix.Readlinkat(pfd, c, buf)
			if rerr == nil {
				target := string(buf[:n])
				if !strings.HasPrefix(target, "/") {
					target = parent + "/" + target
				}
				err = x.mkdirAll(strings.TrimLeft(target, "/"), depth+1)
			}
		}
		unix.Close(pfd)
		if err != nil {
			return fmt.Errorf("mkdir %s: %w", cur, err)
		}
		parent = cur
	}
	return nil
}

// open opens rel inside root, following symlinks (the last one unless
// flags has O_NOFOLLOW) without ever leaving root.
func (x *extractor) open(rel string, flags int) (int, error) {
	if x.manual {
		return x.openManual(rel, flags)
	}
	return x.openat2(rel, flags)
}

func (x *extractor) openat2(rel string, flags int) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 16 {
		fd, err := unix.Openat2(x.rootfd, rel, how)
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// openManual walks rel one component at a time with O_NOFOLLOW, reading
// symlinks itself: ".." stops at root and absolute targets restart there.
func (x *extractor) openManual(rel string, flags int) (int, error) {
	root, err := unix.Dup(x.rootfd)
	if err != nil {
		return -1, err
	}
	stack := []int{root}
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	todo := splitPath(rel)
	follows := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		last := len(todo) == 0
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK && !(last && flags&unix.O_NOFOLLOW != 0):
			buf := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(fd, "", buf)
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if follows++; follows > maxLinkFollows {
				return -1, unix.ELOOP
			}
			target := string(buf[:n])
			if strings.HasPrefix(target, "/") {
				for _, d := range stack[1:] {
					unix.Close(d)
				}
				stack = stack[:1]
			}
			todo = append(splitPath(target), todo...)
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			stack = append(stack, fd)
		case last:
			if flags&unix.O_DIRECTORY != 0 {
				unix.Close(fd)
				return -1, unix.ENOTDIR
			}
			stack = append(stack, fd)
		default:
			unix.Close(fd)
			return -1, unix.ENOTDIR
		}
	}
	top := stack[len(stack)-1]
	if flags&unix.O_PATH != 0 {
		return unix.Dup(top)
	}
	// Reopen the resolved O_PATH descriptor with the real flags.
	return unix.Openat(top, ".", (flags&^unix.O_NOFOLLOW)|unix.O_CLOEXEC, 0)
}
