package qemu

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
)

// defaultMetaData is the meta-data of a drive made for a user-data file
// alone. The instance id is fixed: the drive is made for one boot, and a
// stable id keeps a guest from redoing first-boot work on every run. It
// names no host name, so the image keeps its own unless the user-data
// sets one.
const defaultMetaData = "instance-id: keel-qemu\n"

// maxSeedFile bounds each file of a seed: cloud user data is at most a
// few KiB (EC2 allows 16 KiB), and the drive is held in memory.
const maxSeedFile = 16 << 20

// writeConfigDrive writes a NoCloud config drive: a FAT volume labelled
// CIDATA holding user-data and meta-data. src is a user-data file (the
// meta-data is then defaultMetaData), or a NoCloud seed directory holding
// user-data, meta-data or both, served as they are. FAT, not ISO 9660,
// because keel's ISO writer has no Rock Ridge or Joliet and so cannot
// name files "user-data"; NoCloud readers (cloud-init, keel's metadata
// package) accept either filesystem and either label case.
func writeConfigDrive(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	var files fstree.MemFiles
	switch {
	case fi.IsDir():
		for _, name := range []string{"meta-data", "user-data"} {
			data, err := readSeedFile(filepath.Join(src, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			files = append(files, fstree.MemFile{Path: name, Data: data})
		}
		if len(files) == 0 {
			return fmt.Errorf("%s holds neither user-data nor meta-data (a NoCloud seed directory holds one or both)", src)
		}
	case fi.Mode().IsRegular():
		user, err := readSeedFile(src)
		if err != nil {
			return err
		}
		files = fstree.MemFiles{{Path: "meta-data", Data: []byte(defaultMetaData)}, {Path: "user-data", Data: user}}
	default:
		return fmt.Errorf("%s is neither a user-data file nor a seed directory", src)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	err = fat.Write(f, 0, fat.Size(files), files, fat.Options{Label: "CIDATA"})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("config drive %s: %w", filepath.Base(dst), err)
	}
	return nil
}

// readSeedFile reads a regular file of at most maxSeedFile bytes.
func readSeedFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSeedFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSeedFile {
		return nil, fmt.Errorf("%s is larger than %d MiB, more than a config drive carries", p, maxSeedFile>>20)
	}
	return data, nil
}
