package build

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// SpecImages lists every image reference of s, in spec order.
func SpecImages(s *spec.Spec) []spec.ImageRef {
	refs := append([]spec.ImageRef(nil), s.Init...)
	refs = append(refs, s.Kernel.Image)
	for _, list := range [][]spec.Container{s.Onboot, s.Services, s.Onshutdown} {
		for _, c := range list {
			refs = append(refs, c.Image)
		}
	}
	return refs
}

// ResolveLock resolves every image of s for archs and collects the
// Debian packages their org.keel.debian labels record.
func ResolveLock(ctx context.Context, r *source.Resolver, s *spec.Spec, archs []string) (lock.File, error) {
	var f lock.File
	for _, arch := range archs {
		for _, ref := range SpecImages(s) {
			img, err := r.Image(ctx, ref, arch)
			if err != nil {
				return f, err
			}
			dig, err := img.Digest()
			if err != nil {
				return f, err
			}
			f.Images = append(f.Images, lock.Image{Ref: ref.Ref, Arch: arch, Digest: dig.String()})
			cf, err := img.ConfigFile()
			if err != nil {
				return f, err
			}
			if label := cf.Config.Labels[imagelabel.Debian]; label != "" {
				var debs []imagelabel.Deb
				if err := json.Unmarshal([]byte(label), &debs); err != nil {
					return f, fmt.Errorf("image %s (%s): label %s: %w", ref.Ref, arch, imagelabel.Debian, err)
				}
				for _, d := range debs {
					f.Debs = append(f.Debs, lock.Deb{Name: d.Name, Version: d.Version, Arch: d.Arch, SHA256: d.SHA256})
				}
			}
		}
	}
	f.Sort()
	return f, nil
}

// checkLocked fails unless what s resolves to now is what build.lock,
// next to the first spec file, records.
func checkLocked(ctx context.Context, r *source.Resolver, s *spec.Spec, firstSpec string) error {
	path := filepath.Join(filepath.Dir(firstSpec), lock.FileName)
	locked, err := lock.Read(ctx, path)
	if err != nil {
		return fmt.Errorf("--locked: %w (run `keel lock` first)", err)
	}
	resolved, err := ResolveLock(ctx, r, s, s.Arch)
	if err != nil {
		return fmt.Errorf("--locked: %w", err)
	}
	if diff := lock.Diff(locked, resolved); len(diff) > 0 {
		return fmt.Errorf("--locked: the build differs from %s:\n  %s", path, strings.Join(diff, "\n  "))
	}
	return nil
}
