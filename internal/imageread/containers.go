package imageread

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// espType is the EFI System Partition type GUID, C12A7328-F81F-11D2-BA4B-
// 00A0C93EC93B, as GPT stores it (first three fields little-endian).
var espType = []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

// gptESP finds the EFI system partition of a GPT disk with 512-byte
// sectors (all keel writes), falling back to the first partition.
func gptESP(r io.ReaderAt, size int64) (*io.SectionReader, error) {
	const sector = 512
	var h [92]byte
	if _, err := r.ReadAt(h[:], sector); err != nil {
		return nil, fmt.Errorf("GPT: read header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return nil, errors.New("GPT: no header at LBA 1")
	}
	le := binary.LittleEndian
	entriesLBA := int64(le.Uint64(h[72:]))
	count := int64(le.Uint32(h[80:]))
	esize := int64(le.Uint32(h[84:]))
	// The table is read whole: bound it by the spec's sizes and the disk,
	// or a header could ask for terabytes.
	if esize < 128 || esize > 4096 || count > 1024 {
		return nil, fmt.Errorf("GPT: unusual partition table (%d entries of %d bytes)", count, esize)
	}
	if entriesLBA < 2 || entriesLBA > size/sector || entriesLBA*sector+count*esize > size {
		return nil, fmt.Errorf("GPT: partition table (%d entries of %d bytes at LBA %d) outside the %d-byte disk", count, esize, entriesLBA, size)
	}
	table := make([]byte, count*esize)
	if _, err := r.ReadAt(table, entriesLBA*sector); err != nil {
		return nil, fmt.Errorf("GPT: read partition entries: %w", err)
	}
	var first []byte
	for i := int64(0); i < count; i++ {
		e := table[i*esize : (i+1)*esize]
		if allZero(e[:16]) {
			continue
		}
		if first == nil {
			first = e
		}
		if bytes.Equal(e[:16], espType) {
			return partition(r, size, e)
		}
	}
	if first == nil {
		return nil, errors.New("GPT: no partitions")
	}
	return partition(r, size, first)
}

func partition(r io.ReaderAt, size int64, e []byte) (*io.SectionReader, error) {
	start := int64(binary.LittleEndian.Uint64(e[32:])) * 512
	end := (int64(binary.LittleEndian.Uint64(e[40:])) + 1) * 512
	if start <= 0 || end <= start || end > size {
		return nil, fmt.Errorf("GPT: partition %d-%d outside the %d-byte disk", start, end, size)
	}
	return io.NewSectionReader(r, start, end-start), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// isoFile finds name (slash-separated, case-insensitive) in a plain ISO
// 9660 image, as keel's writer makes them (no Rock Ridge or Joliet
// needed), and returns its extent. The directory walk is small enough
// that a library's full reader would only add ways to fail.
func isoFile(r io.ReaderAt, size int64, name string) (*io.SectionReader, error) {
	const sector = 2048
	pvd := make([]byte, sector)
	found := false
	for lba := int64(16); lba < 32; lba++ {
		if _, err := r.ReadAt(pvd, lba*sector); err != nil {
			return nil, fmt.Errorf("ISO 9660: read volume descriptor: %w", err)
		}
		if string(pvd[1:6]) != "CD001" {
			return nil, errors.New("ISO 9660: bad volume descriptor")
		}
		if pvd[0] == 1 {
			found = true
			break
		}
		if pvd[0] == 255 {
			break
		}
	}
	if !found {
		return nil, errors.New("ISO 9660: no primary volume descriptor")
	}
	le := binary.LittleEndian
	extent, length, isDir := int64(le.Uint32(pvd[156+2:])), int64(le.Uint32(pvd[156+10:])), true
	parts := strings.Split(strings.Trim(name, "/"), "/")
	for i, part := range parts {
		if !isDir {
			return nil, fmt.Errorf("ISO 9660: %s: not a directory", path.Join(parts[:i]...))
		}
		if length > 16<<20 || extent*sector+length > size {
			return nil, fmt.Errorf("ISO 9660: directory of %d bytes at sector %d is out of bounds", length, extent)
		}
		dir := make([]byte, length)
		if _, err := r.ReadAt(dir, extent*sector); err != nil {
			return nil, fmt.Errorf("ISO 9660: read directory: %w", err)
		}
		next := false
		for off := 0; off < len(dir); {
			n := int(dir[off])
			if n == 0 { // records do not cross sectors: skip to the next one
				off = (off/sector + 1) * sector
				continue
			}
			if off+n > len(dir) || n < 34 {
				return nil, errors.New("ISO 9660: bad directory record")
			}
			rec := dir[off : off+n]
			off += n
			nameLen := int(rec[32])
			if 33+nameLen > len(rec) {
				return nil, errors.New("ISO 9660: bad directory record name")
			}
			id := string(rec[33 : 33+nameLen])
			if nameLen == 1 && (id[0] == 0 || id[0] == 1) {
				continue // . and ..
			}
			id, _, _ = strings.Cut(id, ";")
			id = strings.TrimSuffix(id, ".")
			if strings.EqualFold(id, part) {
				extent, length, isDir = int64(le.Uint32(rec[2:])), int64(le.Uint32(rec[10:])), rec[25]&2 != 0
				next = true
				break
			}
		}
		if !next {
			return nil, fmt.Errorf("ISO 9660: no %s", path.Join(parts[:i+1]...))
		}
	}
	if isDir {
		return nil, fmt.Errorf("ISO 9660: %s is a directory", name)
	}
	if extent*sector+length > size {
		return nil, fmt.Errorf("ISO 9660: %s extends past the image", name)
	}
	return io.NewSectionReader(r, extent*sector, length), nil
}

// readOnlyStorage adapts an io.SectionReader to go-diskfs's backend, which
// wants an *os.File-like value; only reads are ever made.
type readOnlyStorage struct{ *io.SectionReader }

func (readOnlyStorage) Close() error                 { return nil }
func (s readOnlyStorage) Stat() (fs.FileInfo, error) { return sizeInfo(s.Size()), nil }
func (readOnlyStorage) Sys() (*os.File, error)       { return nil, backend.ErrNotSuitable }
func (readOnlyStorage) Writable() (backend.WritableFile, error) {
	return nil, backend.ErrIncorrectOpenMode
}
func (readOnlyStorage) Path() string { return "" }

type sizeInfo int64

func (s sizeInfo) Name() string     { return "image" }
func (s sizeInfo) Size() int64      { return int64(s) }
func (sizeInfo) Mode() fs.FileMode  { return 0o444 }
func (sizeInfo) ModTime() time.Time { return time.Time{} }
func (sizeInfo) IsDir() bool        { return false }
func (sizeInfo) Sys() any           { return nil }

// fatFS opens the FAT16 or FAT32 volume held by r (keel writes FAT16 below
// 64 MiB, FAT32 above).
//
// The volume comes from an image anyone may hand to keel inspect, and
// go-diskfs trusts its boot sector: it allocates the FAT at the size the
// boot sector states and divides by its sectors per cluster. Those fields
// are checked against the volume first, and a panic left in the library
// becomes an error.
func fatFS(r *io.SectionReader) (_ fs.ReadFileFS, err error) {
	defer recoverAs(&err, "FAT")
	var bs [512]byte
	if _, err := r.ReadAt(bs[:], 0); err != nil {
		return nil, fmt.Errorf("FAT: read boot sector: %w", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xaa {
		return nil, errors.New("FAT: no boot sector signature")
	}
	le := binary.LittleEndian
	perSector, perCluster := le.Uint16(bs[0x0b:]), bs[0x0d]
	reserved, fats := int64(le.Uint16(bs[0x0e:])), int64(bs[0x10])
	// No 16-bit sectors-per-FAT means FAT32.
	perFAT, fat32Volume := int64(le.Uint16(bs[0x16:])), false
	if perFAT == 0 {
		perFAT, fat32Volume = int64(le.Uint32(bs[0x24:])), true
	}
	if perSector != 512 || perCluster == 0 || perCluster&(perCluster-1) != 0 || reserved == 0 ||
		fats == 0 || fats > 2 || perFAT == 0 || (reserved+fats*perFAT)*512 > r.Size() {
		return nil, fmt.Errorf("FAT: boot sector does not describe a volume of %d bytes", r.Size())
	}
	b := readOnlyStorage{r}
	if fat32Volume {
		f, err := fat32.Read(b, r.Size(), 0, 512)
		if err != nil {
			return nil, fmt.Errorf("FAT32: %w", err)
		}
		return guardedFS{f}, nil
	}
	f, err := fat16.Read(b, r.Size(), 0, 512)
	if err != nil {
		return nil, fmt.Errorf("FAT16: %w", err)
	}
	return guardedFS{f}, nil
}

// guardedFS turns go-diskfs's panics on a malformed volume into errors.
type guardedFS struct{ fsys fs.ReadFileFS }

func (g guardedFS) Open(name string) (_ fs.File, err error) {
	defer recoverAs(&err, "FAT")
	return g.fsys.Open(name)
}

func (g guardedFS) ReadFile(name string) (_ []byte, err error) {
	defer recoverAs(&err, "FAT")
	return g.fsys.ReadFile(name)
}

// recoverAs sets *err when the caller panics.
func recoverAs(err *error, what string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s: malformed volume (%v)", what, p)
	}
}

// espUKI reads the UKI from a FAT volume: the removable-media boot path
// keel writes, EFI/BOOT/BOOTX64.EFI or BOOTAA64.EFI.
func espUKI(r *io.SectionReader) ([]byte, string, error) {
	fsys, err := fatFS(r)
	if err != nil {
		return nil, "", err
	}
	for _, name := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/BOOTAA64.EFI"} {
		data, err := fsys.ReadFile("/" + name)
		if err == nil {
			return data, name, nil
		}
	}
	return nil, "", errors.New("FAT: no EFI/BOOT/BOOTX64.EFI or EFI/BOOT/BOOTAA64.EFI")
}

// ukiInitrd returns the .initrd section of a UKI.
//
// It reads the PE section table itself instead of using debug/pe: UKIs
// built on arm64 stubs by keel so far carry section headers whose unused
// fields (relocation pointers, the tail of short names) hold the stub's
// NOP padding, which debug/pe rejects ("fail to read section
// relocations") although firmware only looks at names, sizes and offsets.
func ukiInitrd(r io.ReaderAt) (*io.SectionReader, error) {
	var dos [64]byte
	if _, err := r.ReadAt(dos[:], 0); err != nil || string(dos[:2]) != "MZ" {
		return nil, errors.New("UKI: not a PE file")
	}
	le := binary.LittleEndian
	peOff := int64(le.Uint32(dos[0x3c:]))
	var coff [24]byte
	if _, err := r.ReadAt(coff[:], peOff); err != nil || string(coff[:4]) != "PE\x00\x00" {
		return nil, errors.New("UKI: no PE header")
	}
	n := int64(le.Uint16(coff[6:]))
	table := make([]byte, n*40)
	if _, err := r.ReadAt(table, peOff+24+int64(le.Uint16(coff[20:]))); err != nil {
		return nil, fmt.Errorf("UKI: read section table: %w", err)
	}
	for i := int64(0); i < n; i++ {
		h := table[i*40 : (i+1)*40]
		if !sectionNamed(h[:8], ".initrd") {
			continue
		}
		// SizeOfRawData is padded to the file alignment with zeros, which
		// a zstd decoder would take for a bad frame; VirtualSize is the
		// initrd's own length.
		size := int64(le.Uint32(h[16:]))
		if vs := int64(le.Uint32(h[8:])); vs != 0 && vs < size {
			size = vs
		}
		return io.NewSectionReader(r, int64(le.Uint32(h[20:])), size), nil
	}
	return nil, errors.New("UKI: no .initrd section")
}

// sectionNamed matches a section header's 8-byte name field: the name,
// then NULs (or, see ukiInitrd, padding bytes that are not name
// characters).
func sectionNamed(field []byte, name string) bool {
	if !bytes.HasPrefix(field, []byte(name)) {
		return false
	}
	for _, c := range field[len(name):] {
		if c == 0 {
			return true
		}
		if c == '.' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return false // a longer name, e.g. ".initrd2"
		}
	}
	return true
}
