package qemu

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
)

// writeConfigDrive writes a NoCloud config drive for a user-data file: a
// FAT volume labelled CIDATA holding user-data and meta-data. FAT, not
// ISO 9660, because keel's ISO writer has no Rock Ridge or Joliet and so
// cannot name files "user-data"; NoCloud readers (cloud-init, keel's
// metadata package) accept either filesystem and either label case.
func writeConfigDrive(userData, dst string) error {
	fi, err := os.Stat(userData)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", userData)
	}
	// The instance id is fixed: the drive is made for one boot, and a
	// stable id keeps a guest from redoing first-boot work on every run.
	meta := []byte("instance-id: keel-qemu\nlocal-hostname: keel\n")
	user, err := os.ReadFile(userData)
	if err != nil {
		return err
	}
	files := fstree.MemFiles{{Path: "meta-data", Data: meta}, {Path: "user-data", Data: user}}
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
