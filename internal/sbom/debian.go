package sbom

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/keelos/keel/internal/imagelabel"
)

// DebianFromLabel decodes the org.keel.debian label of a package image.
// image is the Image.Name the packages belong to (may be empty). An empty
// label means no Debian packages.
func DebianFromLabel(label, image string) ([]DebianPackage, error) {
	if strings.TrimSpace(label) == "" {
		return nil, nil
	}
	var infos []imagelabel.Deb
	if err := json.Unmarshal([]byte(label), &infos); err != nil {
		return nil, fmt.Errorf("sbom: label %s: %w", imagelabel.Debian, err)
	}
	out := make([]DebianPackage, 0, len(infos))
	for _, d := range infos {
		if d.Name == "" {
			return nil, fmt.Errorf("sbom: label %s: a package without a name", imagelabel.Debian)
		}
		// The builder records the index's Source field already split, but
		// Debian writes it as "name (version)" when the source version
		// differs; accept both.
		src, srcVer := splitSource(d.Source)
		out = append(out, DebianPackage{
			Name: d.Name, Version: d.Version, Arch: d.Arch,
			Source: src, SourceVersion: srcVer, SHA256: d.SHA256, Image: image,
		})
	}
	return out, nil
}

func splitSource(field string) (string, string) {
	field = strings.TrimSpace(field)
	name, rest, ok := strings.Cut(field, " ")
	if !ok {
		return field, ""
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
		return name, strings.TrimSpace(rest[1 : len(rest)-1])
	}
	return name, ""
}
