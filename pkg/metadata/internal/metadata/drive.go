package metadata

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/filesystem"

	"github.com/keelos/keel/internal/blockdev"
)

// DriveLabels are the filesystem labels of config drives: NoCloud's
// (either case, as ISO 9660 and FAT write them) and OpenStack's.
var DriveLabels = []string{"cidata", "CIDATA", "config-2", "CONFIG-2"}

// ErrNoDrive is returned when no config drive is attached.
var ErrNoDrive = errors.New("no config drive")

// FindDrive returns the first device carrying a config drive label.
func FindDrive(devs []blockdev.Device) (blockdev.Device, blockdev.Result, error) {
	d, r, ok := blockdev.FindLabel(devs, DriveLabels...)
	if !ok {
		return d, r, ErrNoDrive
	}
	return d, r, nil
}

// ReadDrive reads a config drive (a device or an image file) without
// mounting it: ISO 9660 and FAT32 are read with go-diskfs. NoCloud
// drives hold user-data and meta-data; OpenStack drives hold
// openstack/latest/{meta_data.json,user_data}.
func ReadDrive(path string) (Data, error) {
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return Data{}, fmt.Errorf("config drive %s: %w", path, err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(0)
	if err != nil {
		return Data{}, fmt.Errorf("config drive %s: %w", path, err)
	}
	return readDriveFS(path, fsys)
}

// ReadDriveDir reads a config drive mounted at dir: the way for
// filesystems go-diskfs cannot read (FAT12/16).
func ReadDriveDir(dir string) (Data, error) {
	return readDrive(dir, func(name string) ([]byte, error) {
		return os.ReadFile(dir + "/" + name)
	})
}

func readDriveFS(path string, fsys filesystem.FileSystem) (Data, error) {
	return readDrive(path, func(name string) ([]byte, error) {
		f, err := fsys.OpenFile("/"+name, os.O_RDONLY)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	})
}

func readDrive(where string, read func(string) ([]byte, error)) (Data, error) {
	d := Data{Source: "config drive " + where}
	if meta, err := read("openstack/latest/meta_data.json"); err == nil {
		if err := ParseOpenStackMeta(meta, &d); err != nil {
			return Data{}, err
		}
		if ud, err := read("openstack/latest/user_data"); err == nil {
			d.UserData = ud
		}
		return d, nil
	}
	meta, merr := read("meta-data")
	ud, uerr := read("user-data")
	if merr != nil && uerr != nil {
		return Data{}, fmt.Errorf("config drive %s: no meta-data, user-data or openstack/latest/meta_data.json: %w", where, notExist(uerr))
	}
	if merr == nil {
		ParseNoCloudMeta(string(meta), &d)
	}
	if uerr == nil {
		d.UserData = ud
		ParseCloudConfig(string(ud), &d)
	}
	return d, nil
}

func notExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "not exist") || strings.Contains(err.Error(), "not found") {
		return fs.ErrNotExist
	}
	return err
}
