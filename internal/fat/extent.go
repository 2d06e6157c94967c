package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrFragmented is returned by Extent for a file whose clusters are not
// one contiguous run.
var ErrFragmented = errors.New("file is fragmented")

// Extent returns where the data of the file at p (a path of 8.3 names
// such as "EFI/BOOT/BOOTX64.EFI") lies in the volume that starts at byte
// start of r: its offset from the start of the volume, and its size. A
// boot loader given a block list can then read the file, or a part of
// it, as raw sectors.
func Extent(r io.ReaderAt, start int64, p string) (offset, size int64, err error) {
	v, err := openVolume(readOnly{r}, start)
	if err != nil {
		return 0, 0, fmt.Errorf("fat: %w", err)
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	first, root := v.rootClus, true
	for i, name := range parts {
		short, err := shortName(name)
		if err != nil {
			return 0, 0, fmt.Errorf("fat: %s: %w", p, err)
		}
		e, err := v.lookup(first, root, short)
		if err != nil {
			return 0, 0, fmt.Errorf("fat: %s: %w", p, err)
		}
		last := i == len(parts)-1
		if isDir := e.attr&0x10 != 0; isDir == last {
			return 0, 0, fmt.Errorf("fat: %s: %s is not a %s", p, name, map[bool]string{true: "file", false: "directory"}[last])
		}
		first, root = e.cluster, false
		if !last {
			continue
		}
		if e.size == 0 {
			return 0, 0, nil
		}
		chain := v.chain(first)
		for j := 1; j < len(chain); j++ {
			if chain[j] != chain[j-1]+1 {
				return 0, 0, fmt.Errorf("fat: %s: %w", p, ErrFragmented)
			}
		}
		if int64(len(chain))*v.clusSize < int64(e.size) {
			return 0, 0, fmt.Errorf("fat: %s: its cluster chain is shorter than the file", p)
		}
		return v.clusterOff(first) - start, int64(e.size), nil
	}
	return 0, 0, fmt.Errorf("fat: empty path")
}

type readOnly struct{ io.ReaderAt }

func (readOnly) WriteAt([]byte, int64) (int, error) { return 0, errors.New("read-only") }

type dirEntry struct {
	attr    byte
	cluster uint32
	size    uint32
}

// lookup finds the entry with the short name in a directory.
func (v *volume) lookup(first uint32, root bool, short [11]byte) (dirEntry, error) {
	le := binary.LittleEndian
	for _, r := range v.dirRegions(first, root) {
		buf := make([]byte, r[1])
		if _, err := v.f.ReadAt(buf, r[0]); err != nil {
			return dirEntry{}, fmt.Errorf("read directory: %w", err)
		}
		for o := 0; o+32 <= len(buf); o += 32 {
			e := buf[o : o+32]
			if e[0] == 0 {
				break
			}
			if e[0] == 0xe5 || e[11] == 0x0f || e[11]&0x08 != 0 { // deleted, long name, label
				continue
			}
			if [11]byte(e[:11]) == short {
				return dirEntry{
					attr:    e[11],
					cluster: uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:])),
					size:    le.Uint32(e[28:]),
				}, nil
			}
		}
	}
	return dirEntry{}, fmt.Errorf("%s not found", strings.TrimRight(string(short[:]), " "))
}

// shortName turns an 8.3 name into its directory-entry form.
func shortName(name string) ([11]byte, error) {
	out := [11]byte{' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
	base, ext, _ := strings.Cut(strings.ToUpper(name), ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.ContainsAny(base+ext, ". \"*+,/:;<=>?[\\]|") {
		return out, fmt.Errorf("%q is not an 8.3 name", name)
	}
	copy(out[:], base)
	copy(out[8:], ext)
	return out, nil
}
