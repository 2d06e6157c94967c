package cachefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CreateTemp creates a new temporary file in dir (pattern as for
// os.CreateTemp) and holds an exclusive flock on it until it is closed:
// RemoveStale leaves it alone while the lock is held, and removes it once
// the process that wrote it has gone without renaming it into place. A
// writer therefore renames the temporary before closing it.
func CreateTemp(dir, pattern string) (*os.File, error) {
	for {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		if err := flock(f, unix.LOCK_EX); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		// A cleaner may have locked and removed the file between its
		// creation and our lock: then it has no name left, and a new one
		// is made.
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
		}
		if st.Nlink > 0 {
			return f, nil
		}
		f.Close()
	}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// RemoveStale removes the temporaries of dir (the names isTemp accepts)
// that no live process is writing, that is whose CreateTemp lock nobody
// holds, and reports how many files and bytes it freed.
func RemoveStale(dir string, isTemp func(name string) bool) (int, int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	var n int
	var freed int64
	for _, e := range entries {
		if !isTemp(e.Name()) {
			continue
		}
		size, removed, err := removeIfStale(filepath.Join(dir, e.Name()))
		if err != nil {
			return n, freed, err
		}
		if removed {
			n++
			freed += size
		}
	}
	return n, freed, nil
}

func removeIfStale(p string) (int64, bool, error) {
	f, err := openNoFollow(p)
	switch {
	case errors.Is(err, errNotRegular): // a symlink: nobody writes through it
		return 0, true, removeMissingOK(p)
	case errors.Is(err, os.ErrNotExist):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR) {
			return 0, false, nil // being written
		}
		return 0, false, fmt.Errorf("lock %s: %w", p, err)
	}
	// Holding the lock, remove the file only if it is still the one at p
	// (not renamed away and replaced since it was opened).
	var fst, pst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return 0, false, fmt.Errorf("stat %s: %w", p, err)
	}
	if fst.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, false, nil
	}
	if err := unix.Lstat(p, &pst); err != nil || pst.Dev != fst.Dev || pst.Ino != fst.Ino {
		return 0, false, nil
	}
	return fst.Size, true, removeMissingOK(p)
}

func removeMissingOK(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
