package spec

import (
	"fmt"
	"path"
	"strings"
)

// Where a volume lives on the running machine. The builder resolves a bind
// whose source is a volume name to VolumePath(name), and init mounts the
// volume there before any container starts; both take the path from here.
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
	// MaxVolumeNameLen is a GPT partition name's limit (36 UTF-16 code
	// units): a volume's partition is named after the volume.
	MaxVolumeNameLen = 36
)

// VolumePath is where init mounts the volume name.
func VolumePath(name string) string { return path.Join(VolumesDir, name) }

// BindVolume returns the volume name a bind "SRC:DST[:OPTIONS]" takes as
// its source, and whether SRC is a volume name rather than a host path.
func BindVolume(bind string) (string, bool) {
	src, _, _ := strings.Cut(bind, ":")
	if src == "" || strings.HasPrefix(src, "/") {
		return "", false
	}
	return src, true
}

// ResolveVolumeBinds returns binds with each volume-name source replaced
// by the volume's path; a name that is not among volumes is an error
// naming the bind.
func ResolveVolumeBinds(binds []string, volumes []Volume) ([]string, error) {
	var out []string
	for _, b := range binds {
		name, ok := BindVolume(b)
		if !ok {
			out = append(out, b)
			continue
		}
		found := false
		for _, v := range volumes {
			found = found || v.Name == name
		}
		if !found {
			return nil, fmt.Errorf("bind %q: no [[volume]] is named %q (a bind's source is an absolute path or the name of a volume of the spec)", b, name)
		}
		out = append(out, VolumePath(name)+strings.TrimPrefix(b, name))
	}
	return out, nil
}
