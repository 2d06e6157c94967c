package blockdev

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Device is one block device as sysfs shows it.
type Device struct {
	Name       string // "vda", "vda1", "sr0"
	Path       string // "/dev/vda"
	Partition  bool   // a partition of another device
	Partitions int    // for a whole disk, how many partitions it has
	Size       int64  // bytes
}

// List returns the block devices under sysRoot ("/sys" on a live system)
// with device nodes under devRoot ("/dev"), sorted by name so the choice
// of "the first disk" is stable. Devices of size 0 (empty CD drives,
// unused loop devices) are left out.
func List(sysRoot, devRoot string) ([]Device, error) {
	dir := filepath.Join(sysRoot, "class", "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var out []Device
	for _, e := range ents {
		name := e.Name()
		d := Device{Name: name, Path: filepath.Join(devRoot, name)}
		base := filepath.Join(dir, name)
		if _, err := os.Stat(filepath.Join(base, "partition")); err == nil {
			d.Partition = true
		}
		sectors, err := readInt(filepath.Join(base, "size"))
		if err != nil || sectors == 0 {
			continue
		}
		d.Size = sectors * 512 // sysfs counts 512-byte sectors whatever the device's block size
		if !d.Partition {
			subs, _ := os.ReadDir(base)
			for _, s := range subs {
				if strings.HasPrefix(s.Name(), name) {
					if _, err := os.Stat(filepath.Join(base, s.Name(), "partition")); err == nil {
						d.Partitions++
					}
				}
			}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// FindLabel returns the first device (whole disk or partition) whose
// filesystem label is one of labels, and its probe result.
func FindLabel(devs []Device, labels ...string) (Device, Result, bool) {
	for _, d := range devs {
		r, err := ProbeFile(d.Path)
		if err != nil {
			continue
		}
		for _, l := range labels {
			if r.Label == l {
				return d, r, true
			}
		}
	}
	return Device{}, Result{}, false
}
