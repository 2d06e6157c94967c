package iso9660

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Volume is an ISO 9660 image opened for reading: plain ISO 9660 names,
// as Write makes them (no Rock Ridge or Joliet needed).
type Volume struct {
	r       io.ReaderAt
	size    int64
	root    Record
	catalog uint32 // the El Torito boot catalog's sector; 0: none
}

// Record is a directory record: a file or a directory of the image.
type Record struct {
	Name   string // the identifier without its version and trailing dot
	Dir    bool
	Extent uint32 // first sector
	Size   int64  // bytes
}

// maxDir bounds what is read of one directory.
const maxDir = 16 << 20

// Open reads the volume descriptors of r, an image of size bytes.
func Open(r io.ReaderAt, size int64) (*Volume, error) {
	v := &Volume{r: r, size: size}
	d := make([]byte, SectorSize)
	found := false
	for lba := int64(systemAreaSectors); lba < 2*systemAreaSectors; lba++ {
		if _, err := r.ReadAt(d, lba*SectorSize); err != nil {
			if found {
				break
			}
			return nil, fmt.Errorf("ISO 9660: read volume descriptor: %w", err)
		}
		if string(d[1:6]) != "CD001" {
			if found {
				break
			}
			return nil, errors.New("ISO 9660: bad volume descriptor")
		}
		switch d[0] {
		case 0: // a boot record
			if strings.TrimRight(string(d[7:39]), "\x00") == "EL TORITO SPECIFICATION" {
				v.catalog = binary.LittleEndian.Uint32(d[71:])
			}
		case 1:
			root, err := record(d[156:190])
			if err != nil {
				return nil, err
			}
			v.root, found = root, true
		}
		if d[0] == 255 {
			break
		}
	}
	if !found {
		return nil, errors.New("ISO 9660: no primary volume descriptor")
	}
	return v, nil
}

// record parses a directory record.
func record(rec []byte) (Record, error) {
	if len(rec) < 34 || int(rec[0]) > len(rec) || 33+int(rec[32]) > int(rec[0]) {
		return Record{}, errors.New("ISO 9660: bad directory record")
	}
	le := binary.LittleEndian
	id := string(rec[33 : 33+int(rec[32])])
	id, _, _ = strings.Cut(id, ";")
	return Record{
		Name:   strings.TrimSuffix(id, "."),
		Dir:    rec[25]&2 != 0,
		Extent: le.Uint32(rec[2:]),
		Size:   int64(le.Uint32(rec[10:])),
	}, nil
}

// readDir lists the directory d, without "." and "..".
func (v *Volume) readDir(d Record) ([]Record, error) {
	if d.Size > maxDir || int64(d.Extent)*SectorSize+d.Size > v.size {
		return nil, fmt.Errorf("ISO 9660: directory of %d bytes at sector %d is out of bounds", d.Size, d.Extent)
	}
	buf := make([]byte, d.Size)
	if _, err := v.r.ReadAt(buf, int64(d.Extent)*SectorSize); err != nil {
		return nil, fmt.Errorf("ISO 9660: read directory: %w", err)
	}
	var out []Record
	for off := 0; off < len(buf); {
		n := int(buf[off])
		if n == 0 { // records do not cross sectors: skip to the next one
			off = (off/SectorSize + 1) * SectorSize
			continue
		}
		if off+n > len(buf) || n < 34 {
			return nil, errors.New("ISO 9660: bad directory record")
		}
		rec := buf[off : off+n]
		off += n
		if nameLen := int(rec[32]); 33+nameLen > len(rec) {
			return nil, errors.New("ISO 9660: bad directory record name")
		} else if nameLen == 1 && (rec[33] == 0 || rec[33] == 1) {
			continue // . and ..
		}
		r, err := record(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Stat finds name, slash-separated and matched without regard to case.
func (v *Volume) Stat(name string) (Record, error) {
	r := v.root
	parts := strings.Split(strings.Trim(name, "/"), "/")
	for i, part := range parts {
		if !r.Dir {
			return Record{}, fmt.Errorf("ISO 9660: %s: not a directory", path.Join(parts[:i]...))
		}
		recs, err := v.readDir(r)
		if err != nil {
			return Record{}, err
		}
		found := false
		for _, c := range recs {
			if strings.EqualFold(c.Name, part) {
				r, found = c, true
				break
			}
		}
		if !found {
			return Record{}, fmt.Errorf("ISO 9660: no %s", path.Join(parts[:i+1]...))
		}
	}
	return r, nil
}

// ReadDir lists the directory name ("" is the root).
func (v *Volume) ReadDir(name string) ([]Record, error) {
	d := v.root
	if strings.Trim(name, "/") != "" {
		var err error
		if d, err = v.Stat(name); err != nil {
			return nil, err
		}
		if !d.Dir {
			return nil, fmt.Errorf("ISO 9660: %s is not a directory", name)
		}
	}
	return v.readDir(d)
}

// File returns the content of the regular file name, in place.
func (v *Volume) File(name string) (*io.SectionReader, error) {
	r, err := v.Stat(name)
	if err != nil {
		return nil, err
	}
	if r.Dir {
		return nil, fmt.Errorf("ISO 9660: %s is a directory", name)
	}
	if int64(r.Extent)*SectorSize+r.Size > v.size {
		return nil, fmt.Errorf("ISO 9660: %s extends past the image", name)
	}
	return io.NewSectionReader(v.r, int64(r.Extent)*SectorSize, r.Size), nil
}

// BootEntry is a bootable El Torito entry.
type BootEntry struct {
	Platform byte   // 0 for x86 BIOS, 0xEF for EFI
	Extent   uint32 // the boot image's first sector
	// Sectors is how many 512-byte sectors firmware loads; 0 for an EFI
	// image too large to say.
	Sectors uint16
}

// BootEntries reads the El Torito boot catalog: its bootable entries, in
// catalog order; none when the image has no boot record.
func (v *Volume) BootEntries() ([]BootEntry, error) {
	if v.catalog == 0 {
		return nil, nil
	}
	b := make([]byte, SectorSize)
	if _, err := v.r.ReadAt(b, int64(v.catalog)*SectorSize); err != nil {
		return nil, fmt.Errorf("El Torito: read boot catalog: %w", err)
	}
	le := binary.LittleEndian
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += le.Uint16(b[i:])
	}
	if b[0] != 1 || b[30] != 0x55 || b[31] != 0xaa || sum != 0 {
		return nil, errors.New("El Torito: bad validation entry")
	}
	var out []BootEntry
	add := func(e []byte, platform byte) {
		if e[0] == 0x88 {
			out = append(out, BootEntry{Platform: platform, Extent: le.Uint32(e[8:]), Sectors: le.Uint16(e[6:])})
		}
	}
	add(b[32:64], b[1])
	// Section headers follow, each with its entries; 0x91 marks the last.
	for off := 64; off+32 <= len(b) && (b[off] == 0x90 || b[off] == 0x91); {
		last, platform, n := b[off] == 0x91, b[off+1], int(le.Uint16(b[off+2:]))
		off += 32
		for ; n > 0 && off+32 <= len(b); n-- {
			add(b[off:off+32], platform)
			off += 32
		}
		if last {
			break
		}
	}
	return out, nil
}
