// Package cachefile is what keel's two on-disk stores (the blob cache,
// internal/cache, and the file content store, internal/fstree) share about
// their files: each is named by the SHA-256 of its content and is checked
// against it, whole, before any byte of it is used; and each is written
// through a temporary that a cleaner can tell from one a live process is
// still writing.
package cachefile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MismatchError reports content that is not what its digest or size
// promised.
type MismatchError struct {
	Want, Got         string // digests; Got is "" when the size or type differed first
	WantSize, GotSize int64  // WantSize < 0: unknown; GotSize < 0: not a regular file
}

func (e *MismatchError) Error() string {
	switch {
	case e.Got != "" && e.Got != e.Want:
		return fmt.Sprintf("digest mismatch: want %s, got %s", e.Want, e.Got)
	case e.GotSize < 0:
		return fmt.Sprintf("%s: not a regular file", e.Want)
	default:
		return fmt.Sprintf("size mismatch for %s: want %d bytes, got %d", e.Want, e.WantSize, e.GotSize)
	}
}

// IsMismatch reports whether err says that content did not match.
func IsMismatch(err error) bool {
	var m *MismatchError
	return errors.As(err, &m)
}

// Sum hashes r to its end: its digest ("sha256:<hex>") and length.
func Sum(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// Verifier opens files that must hold given content, and remembers which
// ones this process has hashed so that it hashes each once.
//
// Why a remembered file may be trusted without hashing it again: it is
// trusted only while its (device, inode, size, mtime, ctime) are what they
// were when this process hashed it. A write through the file system
// changes mtime and ctime, and ctime cannot be set back from user space
// (utimensat sets atime and mtime only); replacing the file (rename over
// it, delete and create) changes the inode or, for a reused inode, the
// ctime. Timestamps are coarse (a clock tick, or a second on some file
// systems), so a write in the same tick as the one before the hash would
// keep them: a file changed less than racyWindow before it was hashed is
// not remembered (git's "racy clean" rule). What metadata cannot show at
// all is a change below the file system (a failing disk, a write to the
// block device): so nothing is remembered beyond the process, and every
// keel command hashes each file it uses again. A persistent "verified"
// stamp would carry one hash to every later build, weeks after the bytes
// were read, and is deliberately not kept.
//
// The zero Verifier is ready to use.
type Verifier struct {
	mu   sync.Mutex
	seen map[string]fileID // by path
}

// racyWindow is how long after its last change a file must have been
// hashed to be remembered: more than any file system's timestamp
// granularity, and than the skew between its clock and ours.
const racyWindow = 2 * time.Second

// fileID identifies one version of a file's content (see Verifier).
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
	regular      bool
}

func statFile(f *os.File) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return idOf(&st), nil
}

func idOf(st *unix.Stat_t) fileID {
	return fileID{
		dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim,
		regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
	}
}

// openNoFollow opens p for reading without following a final symlink and
// without blocking on a FIFO: a cache file is a regular file, and anything
// else must be refused, not read.
func openNoFollow(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, errNotRegular
	}
	return f, err
}

var errNotRegular = errors.New("not a regular file")

// Open opens the file at p and returns it, positioned at its start, if it
// is a regular file of size bytes (size < 0: any) whose SHA-256 is digest
// ("sha256:<hex>"). It hashes the whole file before returning it (unless
// this process did so already, see Verifier), so no byte of a damaged
// file is ever used. A file that does not match gives a *MismatchError
// and is left in place: what to do about it is the caller's. A missing
// file gives an error that errors.Is(err, fs.ErrNotExist).
func (v *Verifier) Open(p, digest string, size int64) (*os.File, error) {
	f, err := openNoFollow(p)
	if errors.Is(err, errNotRegular) {
		return nil, &MismatchError{Want: digest, WantSize: size, GotSize: -1}
	}
	if err != nil {
		return nil, err
	}
	start := time.Now()
	id, err := check(f, digest, size, v.known(p))
	if err != nil {
		f.Close()
		return nil, err
	}
	if time.Unix(id.ctime.Unix()).Before(start.Add(-racyWindow)) {
		v.remember(p, id)
	}
	return f, nil
}

// check verifies f against digest and size, unless known says the file
// was verified as it is now. It returns f's identity as it was checked,
// with f back at its start.
func check(f *os.File, digest string, size int64, known func(fileID) bool) (fileID, error) {
	id, err := statFile(f)
	if err != nil {
		return fileID{}, err
	}
	if !id.regular {
		return fileID{}, &MismatchError{Want: digest, WantSize: size, GotSize: -1}
	}
	if size >= 0 && id.size != size {
		return fileID{}, &MismatchError{Want: digest, WantSize: size, GotSize: id.size}
	}
	if known != nil && known(id) {
		return id, nil
	}
	// One byte more than stat said: a file that grows while it is hashed
	// is caught by its length.
	got, n, err := Sum(io.LimitReader(f, id.size+1))
	if err != nil {
		return fileID{}, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if got != digest || n != id.size {
		return fileID{}, &MismatchError{Want: digest, Got: got, WantSize: size, GotSize: n}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fileID{}, err
	}
	return id, nil
}

func (v *Verifier) known(p string) func(fileID) bool {
	return func(id fileID) bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		seen, ok := v.seen[p]
		return ok && seen == id
	}
}

func (v *Verifier) remember(p string, id fileID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[string]fileID{}
	}
	v.seen[p] = id
}

// Forget drops what is remembered about p, before it is removed.
func (v *Verifier) Forget(p string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.seen, p)
}

// Problem is a file of a store that does not hold what its name says.
type Problem struct {
	Path string
	Err  error
}

// ParseHex returns the hex digits of a "sha256:<64 lowercase hex>" digest.
func ParseHex(digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !isDigestName(hexd) {
		return "", fmt.Errorf("bad digest %q: want sha256:<64 hex digits>", digest)
	}
	return hexd, nil
}

func isDigestName(name string) bool {
	if len(name) != sha256.Size*2 {
		return false
	}
	for _, c := range name {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// VerifyDir hashes every file of dir, a directory of files named by the
// hex SHA-256 of their content, skipping those skip names (temporaries),
// and reports how many it checked and which are bad: not named by a
// digest, not a regular file, or not holding the content their name
// says. It changes nothing.
func VerifyDir(ctx context.Context, dir string, skip func(name string) bool) (int, []Problem, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil, err
	}
	checked := 0
	var bad []Problem
	for _, e := range entries {
		if skip != nil && skip(e.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return checked, bad, err
		}
		p := filepath.Join(dir, e.Name())
		checked++
		if !isDigestName(e.Name()) {
			bad = append(bad, Problem{Path: p, Err: errors.New("not named by a SHA-256 digest")})
			continue
		}
		digest := "sha256:" + e.Name()
		f, err := openNoFollow(p)
		if errors.Is(err, errNotRegular) {
			err = &MismatchError{Want: digest, WantSize: -1, GotSize: -1}
		}
		if err == nil {
			_, err = check(f, digest, -1, nil)
			f.Close()
		}
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist): // removed meanwhile
		case IsMismatch(err):
			bad = append(bad, Problem{Path: p, Err: err})
		default:
			return checked, bad, err
		}
	}
	return checked, bad, nil
}
