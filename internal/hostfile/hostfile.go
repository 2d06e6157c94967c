// Package hostfile reads the host files a spec or a package names: a
// [[file]] source, the files of a package directory, build.lock. Those
// files are the user's own, but a path through a checkout is not proof
// of that: a symlink can lead to /etc/shadow or /dev/zero, a FIFO blocks
// a reader forever. So only a regular file reached inside the directory
// of the file that names it is read, every symlink on the way resolved
// inside that directory (absolute ones too, when they point into it);
// reads stop at MaxSize and when their context is done.
package hostfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxSize is the largest file read, 1 GiB: a source becomes part of an
// image that is often held in memory whole (an initramfs), and the limit
// stops a runaway input long before it fills the disk.
const MaxSize = 1 << 30

// maxLinks bounds the symlinks followed for one path, as the kernel does.
const maxLinks = 40

// RefusedError says why a path names nothing keel reads.
type RefusedError struct {
	Name string // the path as given, relative to Dir
	Dir  string
	Why  string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%q %s", e.Name, e.Why) }

// File is an open regular file whose reads are bounded and cancellable.
type File struct {
	ctx  context.Context
	f    *os.File
	size int64
	read int64
	name string
	dir  string
}

// Open opens name, a relative path, inside dir for reading. It refuses
// anything but a regular file of at most MaxSize bytes, and a path whose
// symlinks lead out of dir, with a *RefusedError; a missing file gives an
// error matching fs.ErrNotExist.
func Open(ctx context.Context, dir, name string) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, err := newWalk(dir, name)
	if err != nil {
		return nil, err
	}
	defer w.close()
	parent, base, st, err := w.resolve()
	if err != nil {
		return nil, err
	}
	if why := notRegular(st.Mode); why != "" {
		return nil, w.refuse(why)
	}
	if st.Size > MaxSize {
		return nil, w.refuse(fmt.Sprintf("is %d bytes, more than the %d (1 GiB) keel reads from a file", st.Size, MaxSize))
	}
	// O_NONBLOCK: should the file be swapped for a FIFO since it was
	// looked at, the open must not wait for a writer.
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(w.dir, name), Err: err}
	}
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: filepath.Join(w.dir, name), Err: err}
	}
	if got.Dev != st.Dev || got.Ino != st.Ino || got.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, w.refuse("changed while it was being opened")
	}
	return &File{ctx: ctx, f: os.NewFile(uintptr(fd), filepath.Join(w.dir, name)), size: got.Size, name: name, dir: w.dir}, nil
}

// ReadFile reads name inside dir whole, as Open allows.
func ReadFile(ctx context.Context, dir, name string) ([]byte, error) {
	f, err := Open(ctx, dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Size is the file's size when it was opened.
func (f *File) Size() int64 { return f.size }

// Read reads from the file; it fails once the context is done or past
// MaxSize bytes (a file that grew since it was opened).
func (f *File) Read(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	if rest := MaxSize + 1 - f.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.f.Read(p)
	f.read += int64(n)
	if f.read > MaxSize {
		return n - int(f.read-MaxSize), &RefusedError{Name: f.name, Dir: f.dir, Why: fmt.Sprintf("grew past the %d bytes (1 GiB) keel reads from a file", MaxSize)}
	}
	return n, err
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Inside checks that name, a relative path inside dir, and every symlink
// it leads through stay inside dir. A path that ends at something missing
// (a dangling symlink) passes: nothing would be read through it.
func Inside(dir, name string) error {
	w, err := newWalk(dir, name)
	if err != nil {
		return err
	}
	defer w.close()
	_, _, _, err = w.resolve()
	var refused *RefusedError
	if err == nil || errors.As(err, &refused) && refused.Why == isDirectory {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	return err
}

const isDirectory = "is a directory, not a regular file"

// notRegular says what a file of mode is when it is not a regular file.
func notRegular(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return ""
	case unix.S_IFDIR:
		return isDirectory
	case unix.S_IFIFO:
		return "is a FIFO (named pipe), not a regular file"
	case unix.S_IFCHR:
		return "is a character device, not a regular file"
	case unix.S_IFBLK:
		return "is a block device, not a regular file"
	case unix.S_IFSOCK:
		return "is a socket, not a regular file"
	}
	return fmt.Sprintf("has file type %#o, not a regular file", mode&unix.S_IFMT)
}

// walk resolves a path one component at a time below a directory opened
// once, never following a symlink by the kernel: each is read and its
// target walked in turn, so ".." and absolute targets are checked against
// the directory before anything beyond it is opened.
type walk struct {
	dir   string // absolute, as given
	name  string
	stack []int    // descriptors of the directories from dir down
	path  []string // the names below dir of stack[1:]
	link  string   // the last symlink followed and its target, for messages
	real  string   // dir with its own symlinks resolved, once needed
}

func newWalk(dir, name string) (*walk, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	w := &walk{dir: abs, name: name}
	if name == "" || !filepath.IsLocal(name) {
		return nil, w.refuse("is not a relative path inside " + abs)
	}
	root, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	w.stack = []int{root}
	return w, nil
}

func (w *walk) close() {
	for _, fd := range w.stack {
		unix.Close(fd)
	}
	w.stack = nil
}

func (w *walk) refuse(why string) *RefusedError {
	return &RefusedError{Name: w.name, Dir: w.dir, Why: why}
}

// escape is the error for a path that leads out of the directory.
func (w *walk) escape() *RefusedError {
	why := "leads out of " + w.dir
	if w.link != "" {
		why = fmt.Sprintf("leads out of %s through the symlink %s", w.dir, w.link)
	}
	return w.refuse(why + " (keel reads a file only from inside the directory of the spec or package that names it)")
}

// toRoot drops back to the top directory.
func (w *walk) toRoot() {
	for _, fd := range w.stack[1:] {
		unix.Close(fd)
	}
	w.stack, w.path = w.stack[:1], nil
}

// resolve walks the path and returns the directory holding its last
// component (valid until close), that component's name and its status.
// A path that ends at a directory is refused as one.
func (w *walk) resolve() (parent int, base string, st unix.Stat_t, err error) {
	todo := strings.Split(w.name, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(w.stack) == 1 {
				return -1, "", st, w.escape()
			}
			unix.Close(w.stack[len(w.stack)-1])
			w.stack, w.path = w.stack[:len(w.stack)-1], w.path[:len(w.path)-1]
			continue
		}
		cur := w.stack[len(w.stack)-1]
		here := filepath.Join(append(append([]string{w.dir}, w.path...), c)...)
		fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", st, &fs.PathError{Op: "open", Path: here, Err: err}
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, "", st, &fs.PathError{Op: "stat", Path: here, Err: err}
		}
		last := !hasMore(todo)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := readlink(fd)
			unix.Close(fd)
			if err != nil {
				return -1, "", st, &fs.PathError{Op: "readlink", Path: here, Err: err}
			}
			if links++; links > maxLinks {
				return -1, "", st, w.refuse("leads through too many symlinks")
			}
			rel, _ := filepath.Rel(w.dir, here)
			w.link = fmt.Sprintf("%s -> %s", rel, target)
			if filepath.IsAbs(target) {
				rest, ok := w.below(target)
				if !ok {
					return -1, "", st, w.escape()
				}
				w.toRoot()
				target = rest
			}
			todo = append(strings.Split(target, "/"), todo...)
		case unix.S_IFDIR:
			if last {
				unix.Close(fd)
				return -1, "", st, w.refuse(isDirectory)
			}
			w.stack = append(w.stack, fd)
			w.path = append(w.path, c)
		default:
			unix.Close(fd)
			if !last {
				return -1, "", st, &fs.PathError{Op: "open", Path: here, Err: unix.ENOTDIR}
			}
			return cur, c, st, nil
		}
	}
	return -1, "", st, w.refuse(isDirectory)
}

// below returns an absolute symlink target relative to the directory,
// when it points into it.
func (w *walk) below(target string) (string, bool) {
	if w.real == "" {
		real, err := filepath.EvalSymlinks(w.dir)
		if err != nil {
			real = w.dir
		}
		w.real = real
	}
	for _, d := range []string{w.real, w.dir} {
		if target == d {
			return ".", true
		}
		// Only the prefix is compared: what follows it is walked, so a
		// ".." in it is checked against the directory as any other.
		if rest, ok := strings.CutPrefix(target, d+"/"); ok {
			return rest, true
		}
	}
	return "", false
}

// hasMore reports whether components other than "" and "." remain.
func hasMore(todo []string) bool {
	for _, c := range todo {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

func readlink(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
