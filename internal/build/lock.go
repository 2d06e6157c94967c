package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/pkgbuild"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
	"github.com/keelos/keel/tools"
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
	if r.Packages != nil {
		// keel's own tool packages are locked too: a locked build takes
		// their Debian packages from the lock like any other.
		for _, arch := range archs {
			for _, tool := range toolsFor(arch, s.Output.Formats) {
				if err := buildTool(ctx, r.Packages, tool, arch); err != nil {
					return f, err
				}
			}
		}
		f.Debian = r.Packages.DebianSets()
	}
	f.Sort()
	return f, nil
}

// toolsFor lists the tools/ packages a build for arch may take, whichever
// of its formats --format picks, but for the Raspberry Pi firmware, which
// only the rpi format takes (unless RPiFirmwareEnv gives it).
func toolsFor(arch string, formats []string) []string {
	tools := []string{"efi-stub"}
	if arch == "amd64" {
		tools = append(tools, "isolinux", "grub-pc")
	}
	if arch == "arm64" && slices.Contains(formats, "rpi") && os.Getenv(RPiFirmwareEnv) == "" {
		tools = append(tools, "raspi-firmware")
	}
	return tools
}

// buildTool builds one of keel's tools/ packages into the cache.
func buildTool(ctx context.Context, b *pkgbuild.Builder, tool, arch string) error {
	tmp, err := os.MkdirTemp("", "keel-tools-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir, err := tools.Materialize(tool, tmp)
	if err != nil {
		return err
	}
	if _, err := b.Build(ctx, dir, arch); err != nil {
		return fmt.Errorf("tool %s (%s): %w", tool, arch, err)
	}
	return nil
}

// readLock reads build.lock, next to the first spec file.
func readLock(ctx context.Context, firstSpec string) (*lock.File, error) {
	f, err := lock.Read(ctx, filepath.Join(filepath.Dir(firstSpec), lock.FileName))
	if err != nil {
		return nil, fmt.Errorf("--locked: %w (run `keel lock` first)", err)
	}
	return &f, nil
}

// checkLocked fails unless what s resolves to now, with every registry
// digest and Debian package taken from locked, is what locked records:
// a changed package directory or a [debian] section or image the lock
// does not know is named.
// checkLockArchs fails in one line, naming the command to run, when the
// lock has nothing for an architecture the build is for (it was written
// for others), instead of listing every image of that architecture.
func checkLockArchs(f lock.File, archs []string) error {
	have := f.Archs()
	for _, a := range archs {
		if !slices.Contains(have, a) {
			all := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(have), archs...))))
			return fmt.Errorf("--locked: %s has nothing for %s (it was written for %s): run `keel lock --arch %s`",
				lock.FileName, a, strings.Join(have, ", "), strings.Join(all, ","))
		}
	}
	return nil
}

func checkLocked(ctx context.Context, r *source.Resolver, s *spec.Spec, locked lock.File, firstSpec string) error {
	path := filepath.Join(filepath.Dir(firstSpec), lock.FileName)
	resolved, err := ResolveLock(ctx, r, s, s.Arch)
	if err != nil {
		return fmt.Errorf("--locked: %w", err)
	}
	if diff := lock.Diff(locked, resolved); len(diff) > 0 {
		return fmt.Errorf("--locked: the build differs from %s:\n  %s", path, strings.Join(diff, "\n  "))
	}
	return nil
}

// NewDebianClient is the client of mirror every command uses: downloads
// kept in c, each suite's last verified InRelease kept for --offline.
func NewDebianClient(mirror string, c *cache.Cache, offline bool) *debian.Client {
	return debian.NewClient(mirror, c, debian.WithReleaseDir(filepath.Join(c.Dir(), "debian")), debian.WithOffline(offline))
}

// ExplainNetwork adds the way out to an error from a download that could
// not happen: an unreachable mirror suggests --offline, something an
// offline build lacks names the command that fetches it.
func ExplainNetwork(err error) error {
	var ue *debian.UnreachableError
	switch {
	case errors.As(err, &ue):
		return fmt.Errorf("%w\nthe Debian mirror could not be reached: if the cache holds what this build needs, build with --offline (or --locked, with a build.lock)", err)
	case errors.Is(err, debian.ErrOffline), errors.Is(err, source.ErrOffline):
		return fmt.Errorf("%w\nthe cache lacks it: run `keel fetch` with the same spec files while online (then `keel cache export` carries the images)", err)
	}
	return err
}
