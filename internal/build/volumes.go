package build

import (
	"context"
	"fmt"
	"strings"

	"github.com/keelos/keel/internal/disk"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/spec"
)

// addVolumes gives init what it needs for the spec's volumes: their list
// (layout.VolumesFile) and mke2fs, which formats a volume's partition on
// the first boot that finds it empty (layout.MkfsDir). An image without
// volumes carries neither.
func (b *builder) addVolumes(ctx context.Context, root *fstree.Tree, arch string) error {
	vols := b.spec.Volumes
	if len(vols) == 0 {
		return nil
	}
	var list strings.Builder
	for _, v := range vols {
		fmt.Fprintf(&list, "%s %d\n", v.Name, v.Size.Bytes())
	}
	if err := root.AddFile(strings.TrimPrefix(layout.VolumesFile, "/"), 0o644, 0, 0, strings.NewReader(list.String())); err != nil {
		return err
	}
	mkfs, err := b.toolTree(ctx, "mkfs-ext4", arch)
	if err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	dir := strings.TrimPrefix(layout.MkfsDir, "/")
	if err := root.Graft(dir, mkfs); err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	// Mount points for the device and /proc (mke2fs checks that the
	// device is not mounted) while init runs mke2fs chrooted here.
	for _, d := range []string{"dev", "proc"} {
		if err := addDir(root, dir+"/"+d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// volumePartitions are the partitions of the spec's volumes on every
// disk: named after the volume, of its size, left zero (a hole in the raw
// disk, nothing in the sparse formats) for init to format on first boot.
func volumePartitions(vols []spec.Volume) []disk.Partition {
	var out []disk.Partition
	for _, v := range vols {
		out = append(out, disk.Partition{Name: v.Name, Type: disk.TypeLinuxFilesystem, Size: v.Size.Bytes()})
	}
	return out
}

// volumeModules are the modules an image with volumes loads: ext4, which
// init formats and mounts them with (required), and the drivers of the
// disks they are on (when the kernel has them).
func volumeModules(vols []spec.Volume) (required, optional []string) {
	if len(vols) == 0 {
		return nil, nil
	}
	return []string{"ext4"}, diskRootModules
}
