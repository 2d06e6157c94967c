package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keelos/keel/internal/qcow2"
)

// prepareDisks resolves each disk's format and creates missing files that
// have a size.
func prepareDisks(disks []Disk) ([]Disk, error) {
	out := make([]Disk, 0, len(disks))
	for _, d := range disks {
		if d.Path == "" {
			return nil, errors.New("disk: no file given")
		}
		if d.Format == "" {
			d.Format = formatFromExt(d.Path)
		}
		switch d.Format {
		case "raw", "qcow2", "vpc", "vmdk":
		default:
			return nil, fmt.Errorf("disk %s: format %q: want raw, qcow2, vpc or vmdk", d.Path, d.Format)
		}
		_, err := os.Stat(d.Path)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrNotExist) && d.Size != 0:
			if err := createDisk(d); err != nil {
				return nil, err
			}
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("disk %s does not exist (give a size to create it)", d.Path)
		default:
			return nil, fmt.Errorf("disk: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

func formatFromExt(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".qcow2":
		return "qcow2"
	case ".vhd":
		return "vpc"
	case ".vmdk":
		return "vmdk"
	}
	return "raw"
}

// createDisk writes an empty disk: a sparse raw file, or a qcow2 image
// with no data clusters. Other formats are not created.
func createDisk(d Disk) error {
	size := d.Size
	if size <= 0 {
		return fmt.Errorf("disk %s: size must be positive", d.Path)
	}
	if d.Format != "raw" && d.Format != "qcow2" {
		return fmt.Errorf("disk %s: can create only raw and qcow2 disks, not %s", d.Path, d.Format)
	}
	f, err := os.OpenFile(d.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create disk: %w", err)
	}
	if d.Format == "raw" {
		err = f.Truncate(size)
	} else {
		err = qcow2.Write(f, zeros{}, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(d.Path)
		return fmt.Errorf("create disk %s: %w", d.Path, err)
	}
	return nil
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

var _ io.ReaderAt = zeros{}
