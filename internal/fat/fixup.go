package fat

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// volume is just enough of a FAT volume to repair what go-diskfs v1.9.4
// gets wrong (dosfstools' fsck.vfat flags all three):
//   - a top-level directory's ".." points at the FAT32 root cluster instead of 0;
//   - an empty file still owns a cluster;
//   - FAT16 volumes carry an allocated cluster nobody owns;
//   - FAT32's FSInfo free-cluster count is left "unknown";
//
// and to stamp every directory entry with the epoch: go-diskfs stamps them
// with the time of day, its only other source being SOURCE_DATE_EPOCH in
// the process environment, which a library must not set.
type volume struct {
	f          readWriterAt
	start      int64
	secSize    int64
	clusSize   int64
	fatStart   int64 // byte offset of the first FAT, from start
	fatSize    int64 // bytes per FAT
	numFATs    int64
	rootStart  int64 // FAT16: byte offset of the fixed root directory
	rootBytes  int64
	dataStart  int64
	rootClus   uint32 // FAT32 only
	fsInfo     int64  // FAT32 only: sector of FSInfo
	fat32      bool
	fat        []byte
	nClusters  uint32
	fatChanged bool
	used       []bool // reachable clusters, by number
	// date and time are the epoch in a directory entry's encoding.
	date, time uint16
}

type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

func openVolume(f readWriterAt, start int64) (*volume, error) {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, start); err != nil {
		return nil, fmt.Errorf("read boot sector: %w", err)
	}
	le := binary.LittleEndian
	v := &volume{f: f, start: start}
	v.secSize = int64(le.Uint16(bs[0x0b:]))
	v.clusSize = v.secSize * int64(bs[0x0d])
	reserved := int64(le.Uint16(bs[0x0e:]))
	v.numFATs = int64(bs[0x10])
	rootEnt := int64(le.Uint16(bs[0x11:]))
	total := int64(le.Uint16(bs[0x13:]))
	if total == 0 {
		total = int64(le.Uint32(bs[0x20:]))
	}
	fatSecs := int64(le.Uint16(bs[0x16:]))
	if fatSecs == 0 {
		v.fat32 = true
		fatSecs = int64(le.Uint32(bs[0x24:]))
		v.rootClus = le.Uint32(bs[0x2c:])
		v.fsInfo = int64(le.Uint16(bs[0x30:]))
	}
	v.fatStart = reserved * v.secSize
	v.fatSize = fatSecs * v.secSize
	v.rootStart = v.fatStart + v.numFATs*v.fatSize
	v.rootBytes = rootEnt * 32
	v.dataStart = v.rootStart + v.rootBytes
	v.nClusters = uint32((total*v.secSize - v.dataStart) / v.clusSize)
	v.fat = make([]byte, v.fatSize)
	if _, err := f.ReadAt(v.fat, start+v.fatStart); err != nil {
		return nil, fmt.Errorf("read FAT: %w", err)
	}
	// Clusters the FAT cannot map do not exist (see fitToFAT).
	v.nClusters = min(v.nClusters, v.mapped())
	return v, nil
}

// mapped is how many clusters the FAT has entries for.
func (v *volume) mapped() uint32 {
	entry := int64(2)
	if v.fat32 {
		entry = 4
	}
	return uint32(v.fatSize/entry) - 2
}

// fitToFAT shrinks the volume's sector count when go-diskfs sized the FAT
// a few entries short of the data area (a 64 MiB FAT32 volume, say):
// fsck.vfat refuses a volume whose clusters the FAT cannot all map. The
// unmapped tail is left unused, as mkfs.vfat does.
func (v *volume) fitToFAT() error {
	bootSector := make([]byte, 512)
	if _, err := v.f.ReadAt(bootSector, v.start); err != nil {
		return fmt.Errorf("read boot sector: %w", err)
	}
	le := binary.LittleEndian
	total := int64(le.Uint16(bootSector[0x13:]))
	field, size := 0x13, 2
	if total == 0 {
		total = int64(le.Uint32(bootSector[0x20:]))
		field, size = 0x20, 4
	}
	if uint32((total*v.secSize-v.dataStart)/v.clusSize) <= v.mapped() {
		return nil
	}
	fit := (v.dataStart + int64(v.mapped())*v.clusSize) / v.secSize
	b := make([]byte, 4)
	le.PutUint32(b, uint32(fit))
	sectors := []int64{0}
	if v.fat32 {
		sectors = append(sectors, 6) // the backup boot sector
	}
	for _, sec := range sectors {
		if _, err := v.f.WriteAt(b[:size], v.start+sec*v.secSize+int64(field)); err != nil {
			return fmt.Errorf("write sector count: %w", err)
		}
	}
	return nil
}

func (v *volume) next(c uint32) uint32 {
	if v.fat32 {
		return binary.LittleEndian.Uint32(v.fat[c*4:]) & 0x0fffffff
	}
	return uint32(binary.LittleEndian.Uint16(v.fat[c*2:]))
}

func (v *volume) setFree(c uint32) {
	if v.fat32 {
		binary.LittleEndian.PutUint32(v.fat[c*4:], 0)
	} else {
		binary.LittleEndian.PutUint16(v.fat[c*2:], 0)
	}
	v.fatChanged = true
}

func (v *volume) isEnd(c uint32) bool {
	if v.fat32 {
		return c < 2 || c >= 0x0ffffff8
	}
	return c < 2 || c >= 0xfff8
}

func (v *volume) chain(c uint32) []uint32 {
	var out []uint32
	for !v.isEnd(c) && c < v.nClusters+2 && len(out) <= int(v.nClusters) {
		out = append(out, c)
		c = v.next(c)
	}
	return out
}

func (v *volume) markUsed(c uint32) {
	for _, c := range v.chain(c) {
		v.used[c] = true
	}
}

func (v *volume) clusterOff(c uint32) int64 {
	return v.start + v.dataStart + int64(c-2)*v.clusSize
}

// dirRegions returns the byte ranges (absolute offsets, lengths) of a directory.
func (v *volume) dirRegions(first uint32, root bool) [][2]int64 {
	if root && !v.fat32 {
		return [][2]int64{{v.start + v.rootStart, v.rootBytes}}
	}
	var out [][2]int64
	for _, c := range v.chain(first) {
		out = append(out, [2]int64{v.clusterOff(c), v.clusSize})
	}
	return out
}

// repair walks the tree from the root, stamps every entry with epoch and
// fixes the entries in place.
func (v *volume) repair(epoch time.Time) error {
	v.date, v.time = dosTime(epoch)
	if err := v.fitToFAT(); err != nil {
		return err
	}
	v.used = make([]bool, v.nClusters+2)
	if v.fat32 {
		v.markUsed(v.rootClus)
	}
	if err := v.repairDir(v.rootClus, true, 0); err != nil {
		return err
	}
	for c := uint32(2); c < v.nClusters+2; c++ {
		if !v.used[c] && v.next(c) != 0 {
			v.setFree(c)
		}
	}
	if v.fatChanged {
		for i := range v.numFATs {
			if _, err := v.f.WriteAt(v.fat, v.start+v.fatStart+i*v.fatSize); err != nil {
				return fmt.Errorf("write FAT: %w", err)
			}
		}
	}
	if !v.fat32 {
		return nil
	}
	var free, firstFree uint32
	for c := uint32(2); c < v.nClusters+2; c++ {
		if v.next(c) == 0 {
			if free == 0 {
				firstFree = c
			}
			free++
		}
	}
	var b [8]byte
	binary.LittleEndian.PutUint32(b[0:], free)
	binary.LittleEndian.PutUint32(b[4:], firstFree)
	// FSInfo: free count at 488, next free at 492; FAT32 keeps a copy of
	// it right after the backup boot sector (sector 6+1).
	for _, sec := range []int64{v.fsInfo, 7} {
		if _, err := v.f.WriteAt(b[:], v.start+sec*v.secSize+488); err != nil {
			return fmt.Errorf("write FSInfo: %w", err)
		}
	}
	return nil
}

func (v *volume) repairDir(first uint32, root bool, depth int) error {
	if depth > 64 {
		return fmt.Errorf("directory tree deeper than 64")
	}
	le := binary.LittleEndian
	for _, r := range v.dirRegions(first, root) {
		buf := make([]byte, r[1])
		if _, err := v.f.ReadAt(buf, r[0]); err != nil {
			return fmt.Errorf("read directory: %w", err)
		}
		changed := false
		for o := 0; o+32 <= len(buf); o += 32 {
			e := buf[o : o+32]
			if e[0] == 0 {
				break
			}
			attr := e[11]
			if e[0] == 0xe5 || attr == 0x0f { // deleted, long name
				continue
			}
			name := string(e[0:11])
			v.stamp(e, depth == 1 && name == "..         ")
			changed = true
			if attr&0x08 != 0 { // the volume label
				continue
			}
			clus := uint32(le.Uint16(e[26:])) | uint32(le.Uint16(e[20:]))<<16
			switch {
			case name == ".          ":
			case name == "..         ":
				if depth == 1 && clus != 0 {
					le.PutUint16(e[26:], 0)
					le.PutUint16(e[20:], 0)
					changed = true
				}
			case attr&0x10 != 0:
				v.markUsed(clus)
				if err := v.repairDir(clus, false, depth+1); err != nil {
					return err
				}
			case le.Uint32(e[28:]) == 0 && clus != 0:
				for _, c := range v.chain(clus) {
					v.setFree(c)
				}
				le.PutUint16(e[26:], 0)
				le.PutUint16(e[20:], 0)
				changed = true
			default:
				v.markUsed(clus)
			}
		}
		if changed {
			if _, err := v.f.WriteAt(buf, r[0]); err != nil {
				return fmt.Errorf("write directory: %w", err)
			}
		}
	}
	return nil
}

// stamp sets the times of a short directory entry to the epoch: created,
// accessed (a date only) and written. go-diskfs fills the ".." entry of a
// top-level directory from the root, which has no entry of its own: its
// creation and access times are those of the zero time.Time, whatever
// the clock says, and stay as written, so that images keep their bytes.
func (v *volume) stamp(e []byte, topLevelParent bool) {
	le := binary.LittleEndian
	if !topLevelParent {
		le.PutUint16(e[14:], v.time) // created
		le.PutUint16(e[16:], v.date)
		le.PutUint16(e[18:], v.date) // accessed
	}
	le.PutUint16(e[22:], v.time) // written
	le.PutUint16(e[24:], v.date)
}

// dosTime encodes t (UTC) as a directory entry does, as go-diskfs does:
// years from 1980 in 7 bits, seconds halved.
func dosTime(t time.Time) (date, tod uint16) {
	t = t.UTC()
	date = uint16((t.Year()-1980)<<9 + int(t.Month())<<5 + t.Day())
	tod = uint16(t.Hour()<<11 + t.Minute()<<5 + t.Second()/2)
	return date, tod
}
