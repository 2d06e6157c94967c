package layout

import "path"

// Volumes: where the builder and init put a [[volume]] of the spec. The
// builder resolves a bind whose source is a volume name to
// VolumePath(name), and init mounts the volume there before any
// container starts.
const (
	// VolumesDir holds one mount point per volume, named after it.
	VolumesDir = "/var/lib/keel/volumes"
	// VolumesFile lists the image's volumes for init, one "NAME SIZE"
	// line each (SIZE in bytes), in spec order.
	VolumesFile = "/etc/keel/volumes"
	// MkfsDir holds mke2fs and its libraries in an image with volumes:
	// init formats an empty volume by running MkfsDir/sbin/mke2fs
	// chrooted in MkfsDir.
	MkfsDir = "/usr/lib/keel/mkfs"
)

// VolumePath is where init mounts the volume name.
func VolumePath(name string) string { return path.Join(VolumesDir, name) }
