package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/pkgbuild"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

func newLockCmd() *cobra.Command {
	var pull bool
	cmd := &cobra.Command{
		Use:   "lock [SPEC...]",
		Short: "Write build.lock with the digest of every image and .deb the spec uses",
		Long: `Lock resolves every image the spec names (init, kernel, onboot, services,
onshutdown), for each architecture, builds local packages, and writes
build.lock next to the first spec: the digest of every image and the
SHA-256 of every Debian package inside them. 'keel build --locked' then
fails if anything would differ.`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				files = []string{spec.DefaultSpecFile}
			}
			s, err := spec.Load(files...)
			if err != nil {
				return err
			}
			archs := global.Arch
			if len(archs) == 0 {
				archs = s.Arch
			}
			if len(archs) == 0 {
				archs = []string{runtime.GOARCH}
			}
			b, err := newPackageBuilder(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			r := &source.Resolver{Cache: b.Cache, Packages: b, Pull: pull}
			f, err := resolveLock(cmd.Context(), r, s, archs)
			if err != nil {
				return err
			}
			path := filepath.Join(filepath.Dir(files[0]), lock.FileName)
			if err := lock.Write(path, f); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d images, %d Debian packages\n", path, len(f.Images), len(f.Debs))
			return nil
		},
	}
	cmd.Flags().BoolVar(&pull, "pull", false, "re-resolve registry tags instead of using the cache")
	return cmd
}

// specImages lists every image reference of s, in spec order.
func specImages(s *spec.Spec) []spec.ImageRef {
	refs := append([]spec.ImageRef(nil), s.Init...)
	refs = append(refs, s.Kernel.Image)
	for _, list := range [][]spec.Container{s.Onboot, s.Services, s.Onshutdown} {
		for _, c := range list {
			refs = append(refs, c.Image)
		}
	}
	return refs
}

// resolveLock resolves every image of s for archs and collects the
// Debian packages their org.keel.debian labels record.
func resolveLock(ctx context.Context, r *source.Resolver, s *spec.Spec, archs []string) (lock.File, error) {
	var f lock.File
	for _, arch := range archs {
		for _, ref := range specImages(s) {
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
			if label := cf.Config.Labels[pkgbuild.LabelDebian]; label != "" {
				var debs []pkgbuild.DebInfo
				if err := json.Unmarshal([]byte(label), &debs); err != nil {
					return f, fmt.Errorf("image %s (%s): label %s: %w", ref.Ref, arch, pkgbuild.LabelDebian, err)
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
