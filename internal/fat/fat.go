// Package fat writes FAT filesystem images (FAT16 for small volumes, FAT32
// from 64 MiB) holding a given set of files, through go-diskfs, and reads
// files and their extents back.
//
// Images are reproducible: files go in sorted by path, timestamps come from
// Options.Epoch, and the volume serial number is derived from the label and
// the files' names and contents.
package fat

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/keelos/keel/internal/fstree"
)

// Options describe the volume.
type Options struct {
	Label string // up to 11 characters; empty means "NO NAME"
	// Epoch stamps every directory entry; the zero value means
	// 1980-01-01, the earliest time FAT can hold.
	Epoch time.Time
}

const (
	sectorSize = 512
	mib        = 1 << 20
	// fat32Min is where FAT32 takes over: below it a FAT32 volume with
	// 512-byte clusters would have fewer than the 65525 clusters the
	// FAT32 definition requires.
	fat32Min = 64 * mib
	fat16Min = 8 * mib
	// 4 KiB is the largest cluster go-diskfs picks below 8 GiB; sizing with
	// it over-estimates the slack of smaller clusters.
	sizingCluster = 4096
	writeChunk    = 32 * mib
)

var fatEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Size returns the volume size, a whole number of MiB, that holds the
// files of src with some headroom (about 5% and at least 1 MiB free).
func Size(src fstree.Source) int64 {
	var content int64
	dirs := map[string]bool{}
	entries := entriesOf(src)
	for _, e := range entries {
		p := clean(e.Path)
		if e.Mode.IsDir() {
			dirs[p] = true
			continue
		}
		content += alignUp(e.Size, sizingCluster)
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	// Each directory takes a cluster or more; each name up to 32 bytes per
	// 13 characters of long name plus its short entry.
	content += int64(len(dirs)+1) * sizingCluster
	for _, e := range entries {
		if !e.Mode.IsDir() {
			content += int64(len(path.Base(e.Path))/13+2) * 32
		}
	}
	// Two FATs of 4-byte entries for 512-byte clusters: under 2% overhead.
	need := content + content/20 + content/50 + mib + 64*1024
	need = alignUp(need, mib)
	if need < fat32Min {
		return max(need, fat16Min)
	}
	return need
}

// entriesOf lists src, which may be nil: an empty volume.
func entriesOf(src fstree.Source) []*fstree.Entry {
	if src == nil {
		return nil
	}
	return src.Entries()
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// item is an entry of the source to write, at its cleaned path.
type item struct {
	path string
	e    *fstree.Entry
}

// Write creates a FAT volume of size bytes at offset start of f and copies
// the regular files and directories of src into it. size is a multiple of
// 512; FAT16 is used below 64 MiB.
func Write(f *os.File, start, size int64, src fstree.Source, opts Options) error {
	if size%sectorSize != 0 || start%sectorSize != 0 {
		return fmt.Errorf("fat: start %d and size %d must be multiples of %d", start, size, sectorSize)
	}
	if len(opts.Label) > 11 {
		return fmt.Errorf("fat: label %q longer than 11 characters", opts.Label)
	}
	var sorted []item
	for _, e := range entriesOf(src) {
		p := clean(e.Path)
		switch {
		case p == "":
			return fmt.Errorf("fat: empty file path")
		case !e.Mode.IsRegular() && !e.Mode.IsDir():
			return fmt.Errorf("fat: %s: a %v, but FAT holds only files and directories", p, e.Mode.Type())
		}
		sorted = append(sorted, item{p, e})
	}
	slices.SortFunc(sorted, func(a, b item) int { return strings.Compare(a.path, b.path) })

	epoch := opts.Epoch
	if epoch.IsZero() || epoch.Before(fatEpoch) {
		epoch = fatEpoch
	}
	if end := start + size; end > 0 {
		if st, err := f.Stat(); err != nil {
			return fmt.Errorf("fat: %w", err)
		} else if st.Size() < end {
			if err := f.Truncate(end); err != nil {
				return fmt.Errorf("fat: grow image: %w", err)
			}
		}
	}
	b := file.New(f, false)
	var (
		fsys      filesystem.FileSystem
		err       error
		serialOff int64
	)
	if size < fat32Min {
		fsys, err = fat16.Create(b, size, start, sectorSize, opts.Label, true)
		serialOff = 0x27
	} else {
		fsys, err = fat32.Create(b, size, start, sectorSize, opts.Label, true)
		serialOff = 0x43
	}
	if err != nil {
		return fmt.Errorf("fat: create %d-byte volume: %w", size, err)
	}

	sum := sha256.New()
	fmt.Fprintf(sum, "label %q\n", opts.Label)
	made := map[string]bool{}
	mkdir := func(d string) error {
		if d == "." || made[d] {
			return nil
		}
		if err := fsys.Mkdir("/" + d); err != nil {
			return fmt.Errorf("fat: mkdir %s: %w", d, err)
		}
		for ; d != "."; d = path.Dir(d) {
			made[d] = true
		}
		return nil
	}
	for _, it := range sorted {
		if it.e.Mode.IsDir() {
			if err := mkdir(it.path); err != nil {
				return err
			}
			continue
		}
		if err := mkdir(path.Dir(it.path)); err != nil {
			return err
		}
		if err := copyFile(fsys, src, it, sum); err != nil {
			return err
		}
	}

	v, err := openVolume(f, start)
	if err == nil {
		err = v.repair(epoch)
	}
	if err != nil {
		return fmt.Errorf("fat: repair volume: %w", err)
	}

	// go-diskfs leaves the serial at 0 when reproducible; give each volume
	// its own, stable one. FAT32 keeps a backup boot sector at sector 6.
	var serial [4]byte
	copy(serial[:], sum.Sum(nil))
	offs := []int64{start + serialOff}
	if serialOff == 0x43 {
		offs = append(offs, start+6*sectorSize+serialOff)
	}
	for _, o := range offs {
		if _, err := f.WriteAt(serial[:], o); err != nil {
			return fmt.Errorf("fat: write volume serial: %w", err)
		}
	}
	return nil
}

// Serial reads the volume serial number of the FAT volume at start of r.
func Serial(r io.ReaderAt, start int64) (uint32, error) {
	var bs [sectorSize]byte
	if _, err := r.ReadAt(bs[:], start); err != nil {
		return 0, fmt.Errorf("fat: read boot sector: %w", err)
	}
	off := 0x27
	if binary.LittleEndian.Uint16(bs[0x16:]) == 0 { // FAT32: no 16-bit sectors-per-FAT
		off = 0x43
	}
	return binary.LittleEndian.Uint32(bs[off:]), nil
}

func copyFile(fsys filesystem.FileSystem, src fstree.Source, fl item, sum hash.Hash) error {
	p, size := fl.path, fl.e.Size
	fmt.Fprintf(sum, "file %q %d\n", p, size)
	rc, err := src.Open(fl.e)
	if err != nil {
		return fmt.Errorf("fat: open %s: %w", p, err)
	}
	defer rc.Close()
	out, err := fsys.OpenFile("/"+p, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("fat: create %s: %w", p, err)
	}
	// go-diskfs rewrites both FATs on every Write that allocates, so write
	// in as few, large pieces as possible.
	buf := make([]byte, min(size, writeChunk))
	in := io.TeeReader(io.LimitReader(rc, size), sum)
	for left := size; left > 0; {
		n, err := io.ReadFull(in, buf[:min(left, writeChunk)])
		if err != nil {
			return fmt.Errorf("fat: %s: read after %d of %d bytes: %w", p, size-left, size, err)
		}
		if _, err := out.Write(buf[:n]); err != nil {
			return fmt.Errorf("fat: write %s: %w", p, err)
		}
		left -= int64(n)
	}
	if extra, _ := rc.Read(make([]byte, 1)); extra > 0 {
		return fmt.Errorf("fat: %s: longer than its %d bytes", p, size)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("fat: close %s: %w", p, err)
	}
	return nil
}
