package spec

import (
	"fmt"
	"strings"

	"github.com/keelos/keel/internal/layout"
)

const (
	// MaxVolumeNameLen is a GPT partition name's limit (36 UTF-16 code
	// units): a volume's partition is named after the volume.
	MaxVolumeNameLen = 36
)

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
// by the volume's path (layout.VolumePath); a name that is not among volumes is an error
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
		out = append(out, layout.VolumePath(name)+strings.TrimPrefix(b, name))
	}
	return out, nil
}
