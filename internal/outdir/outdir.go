// Package outdir replaces the outputs of a build in a directory as one
// set. A build writes every output into a staging directory inside the
// output directory; Commit makes each file durable, then records the set
// in a commit marker, then renames the files into place. A build that
// fails or is cancelled before the marker leaves the directory as it
// was. One killed at any point is finished by the next Open: a staging
// directory with a marker is moved into place (roll forward), one
// without is deleted (roll back). An exclusive lock on the directory
// serialises the builds writing to it.
package outdir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// stagingName is the staging directory inside the output directory.
	stagingName = ".keel-staging"
	// commitName is the commit marker inside the staging directory: the
	// names of the set's files, one a line.
	commitName = ".keel-commit"
)

// lockPoll is how often a build waiting for the directory tries again.
const lockPoll = 100 * time.Millisecond

// Dir is an output directory held by one build.
type Dir struct {
	path      string
	staging   string
	lock      *os.File // the directory itself, flocked
	committed bool
}

// Open creates the directory if needed and locks it, waiting (and saying
// so through progress) while another build holds it, until ctx is done.
// It then finishes or removes what an interrupted build left, and makes
// an empty staging directory.
func Open(ctx context.Context, path string, progress func(string)) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := lock(ctx, f, path, progress); err != nil {
		f.Close()
		return nil, err
	}
	d := &Dir{path: path, staging: filepath.Join(path, stagingName), lock: f}
	if err := d.recover(progress); err != nil {
		d.release()
		return nil, err
	}
	if err := os.Mkdir(d.staging, 0o755); err != nil {
		d.release()
		return nil, err
	}
	return d, nil
}

// lock takes an exclusive flock on the open directory f. A blocking flock
// would not return on cancel, so it polls.
func lock(ctx context.Context, f *os.File, path string, progress func(string)) error {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for waiting := false; ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("locking: %w", err)
		}
		if !waiting {
			progress(fmt.Sprintf("%s: waiting for the other keel build writing to it", path))
			waiting = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Staging is where the build writes its outputs, under their final names.
func (d *Dir) Staging() string { return d.staging }

// Commit moves the named files of the staging directory into the output
// directory as one set. Once it has written the commit marker it no
// longer stops for ctx: the set is committed, and what a failure leaves
// the next Open finishes.
func (d *Dir) Commit(ctx context.Context, names []string) error {
	for _, n := range names {
		if err := checkName(n); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := syncFile(filepath.Join(d.staging, n)); err != nil {
			return err
		}
	}
	if err := syncFile(d.staging); err != nil {
		return err
	}
	tmp := filepath.Join(d.staging, commitName+".tmp")
	marker := strings.Join(names, "\n") + "\n"
	if err := writeSynced(tmp, []byte(marker)); err != nil {
		return fmt.Errorf("commit marker: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.staging, commitName)); err != nil {
		return fmt.Errorf("commit marker: %w", err)
	}
	d.committed = true
	if err := syncFile(d.staging); err != nil {
		return err
	}
	return d.move(names)
}

// Close removes the staging directory unless the set was committed, and
// releases the directory for the next build.
func (d *Dir) Close() error {
	var err error
	if !d.committed {
		err = os.RemoveAll(d.staging)
	}
	d.release()
	return err
}

func (d *Dir) release() {
	unix.Flock(int(d.lock.Fd()), unix.LOCK_UN)
	d.lock.Close()
}

// recover finishes the set of a build interrupted after its commit
// marker, or removes the staging directory of one interrupted before.
func (d *Dir) recover(progress func(string)) error {
	if _, err := os.Lstat(d.staging); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	names, err := readMarker(filepath.Join(d.staging, commitName))
	if errors.Is(err, fs.ErrNotExist) {
		progress(fmt.Sprintf("%s: removing the partial outputs of an interrupted build", d.path))
		return os.RemoveAll(d.staging)
	}
	if err != nil {
		return fmt.Errorf("%w: remove %s by hand (it holds the outputs of an interrupted build)", err, d.staging)
	}
	progress(fmt.Sprintf("%s: moving into place the %d outputs of an interrupted build that had finished writing them", d.path, len(names)))
	return d.move(names)
}

// move renames the named files from the staging directory into place and
// removes it. A name no longer in the staging directory was moved before
// an interruption, so moving again is harmless.
func (d *Dir) move(names []string) error {
	for _, n := range names {
		err := os.Rename(filepath.Join(d.staging, n), filepath.Join(d.path, n))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("moving %s into place: %w (the next keel build into %s finishes the move)", n, err, d.path)
		}
	}
	if err := syncFile(d.path); err != nil {
		return err
	}
	return os.RemoveAll(d.staging)
}

// checkName accepts a plain file name that is not one of outdir's own.
func checkName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\n\x00") || strings.HasPrefix(n, ".keel-") {
		return fmt.Errorf("output name %q: not a plain file name", n)
	}
	return nil
}

func readMarker(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if err := checkName(s.Text()); err != nil {
			return nil, fmt.Errorf("%s is damaged: %w", p, err)
		}
		names = append(names, s.Text())
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return names, nil
}

// syncFile flushes a file or directory to disk.
func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func writeSynced(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
