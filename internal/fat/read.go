package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// FS is a FAT volume opened for reading. Names are slash-separated and
// unrooted, as io/fs has them: "EFI/BOOT/BOOTX64.EFI".
type FS struct{ fsys diskfsFS }

// diskfsFS is what go-diskfs's FAT16 and FAT32 file systems offer.
type diskfsFS interface {
	fs.ReadFileFS
	fs.StatFS
}

// Open opens the FAT16 or FAT32 volume of size bytes r holds (keel writes
// FAT16 below 64 MiB, FAT32 above) for reading, through go-diskfs.
//
// The volume may come from an image anyone may hand to keel inspect, and
// go-diskfs trusts its boot sector: it allocates the FAT at the size the
// boot sector states and divides by its sectors per cluster. Those fields
// are checked against the volume first, and a panic left in the library
// becomes an error.
func Open(r io.ReaderAt, size int64) (_ *FS, err error) {
	defer recoverAs(&err)
	var bs [sectorSize]byte
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
	if perSector != sectorSize || perCluster == 0 || perCluster&(perCluster-1) != 0 || reserved == 0 ||
		fats == 0 || fats > 2 || perFAT == 0 || (reserved+fats*perFAT)*sectorSize > size {
		return nil, fmt.Errorf("FAT: boot sector does not describe a volume of %d bytes", size)
	}
	b := readOnlyStorage{io.NewSectionReader(r, 0, size)}
	if fat32Volume {
		f, err := fat32.Read(b, size, 0, sectorSize)
		if err != nil {
			return nil, fmt.Errorf("FAT32: %w", err)
		}
		return &FS{f}, nil
	}
	f, err := fat16.Read(b, size, 0, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("FAT16: %w", err)
	}
	return &FS{f}, nil
}

// Open opens the named file.
func (f *FS) Open(name string) (_ fs.File, err error) {
	defer recoverAs(&err)
	return f.fsys.Open(name)
}

// Stat describes the named file.
func (f *FS) Stat(name string) (_ fs.FileInfo, err error) {
	defer recoverAs(&err)
	return f.fsys.Stat(name)
}

// ReadFile reads the named file.
func (f *FS) ReadFile(name string) (_ []byte, err error) {
	defer recoverAs(&err)
	data, err := f.fsys.ReadFile(name)
	if err != nil {
		// go-diskfs fails to read a file that owns no cluster, as an
		// empty one does once Write has repaired the volume.
		if fi, serr := f.fsys.Stat(name); serr == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			return []byte{}, nil
		}
	}
	return data, err
}

// recoverAs sets *err when the caller panics.
func recoverAs(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("FAT: malformed volume (%v)", p)
	}
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
