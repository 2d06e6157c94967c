package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// netFlags are Cargo's conventions for what a command may download and
// resolve: --locked, --offline and --frozen (both).
type netFlags struct {
	locked, offline, frozen bool
}

func addNetFlags(f *pflag.FlagSet, n *netFlags, lockFile string) {
	f.BoolVar(&n.locked, "locked", false, "take every image digest and Debian package from "+lockFile+" and fail if anything would differ from it")
	f.BoolVar(&n.offline, "offline", false, "download nothing: use only what the cache holds (the last verified Debian indexes, images by digest)")
	f.BoolVar(&n.frozen, "frozen", false, "--locked and --offline")
}

func (n netFlags) isLocked() bool  { return n.locked || n.frozen }
func (n netFlags) isOffline() bool { return n.offline || n.frozen }

// check rejects --pull with --offline, which cannot both be obeyed.
func (n netFlags) check(pull bool) error {
	if pull && n.isOffline() {
		return usageError(errors.New("--pull re-resolves registry tags, --offline downloads nothing: give one"))
	}
	return nil
}

// resolveSpec loads the spec files and resolves every image they name,
// for each architecture, into the cache: what keel lock records and keel
// fetch downloads.
func (g *globalFlags) resolveSpec(ctx context.Context, progress io.Writer, files []string, bf *builderFlags, pull bool, n netFlags) (lock.File, error) {
	s, err := spec.Load(files...)
	if err != nil {
		return lock.File{}, err
	}
	archs := g.Arch
	if len(archs) == 0 {
		archs = s.Arch
	}
	if len(archs) == 0 {
		archs = []string{runtime.GOARCH}
	}
	b, err := g.packageBuilder(progress, bf, n.isOffline())
	if err != nil {
		return lock.File{}, err
	}
	r := &source.Resolver{Cache: b.Cache, Packages: b, Pull: pull, Offline: n.isOffline()}
	if n.isLocked() {
		f, err := lock.Read(ctx, filepath.Join(filepath.Dir(files[0]), lock.FileName))
		if err != nil {
			return lock.File{}, fmt.Errorf("--locked: %w (run `keel lock` first)", err)
		}
		b.Locked, r.Locked = &f, &f
	}
	f, err := build.ResolveLock(ctx, r, s, archs)
	if err != nil {
		return lock.File{}, build.ExplainNetwork(err)
	}
	return f, nil
}

func newFetchCmd(g *globalFlags) *cobra.Command {
	var pull bool
	var n netFlags
	var bf builderFlags
	cmd := &cobra.Command{
		Use:   "fetch [SPEC...]",
		Short: "Download into the cache everything the spec needs, for building offline",
		Long: `Fetch resolves every image the spec names (init, kernel, onboot, services,
onshutdown), for each architecture, as keel build would: registry images
are pulled, local packages are built (their Debian indexes and packages
downloaded). Afterwards 'keel build --offline' (or, with a build.lock,
'keel build --frozen') needs no network. 'keel cache export' then carries
the images to another machine, for example an air-gapped one, where
'keel cache import' and 'keel build --frozen' build the same bytes.

With --locked, every registry digest and Debian package is the one
build.lock records.`,
		Example: `  keel fetch --locked build.toml
  keel cache export > keel-cache.tar   # then, on the other machine:
  keel cache import < keel-cache.tar && keel build --frozen build.toml`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				files = []string{spec.DefaultSpecFile}
			}
			if err := n.check(pull); err != nil {
				return err
			}
			f, err := g.resolveSpec(cmd.Context(), cmd.ErrOrStderr(), files, &bf, pull, n)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cached: %d images, %d Debian packages\n", len(f.Images), len(f.Debs))
			return nil
		},
	}
	cmd.Flags().BoolVar(&pull, "pull", false, "re-resolve registry tags instead of using the cache")
	addNetFlags(cmd.Flags(), &n, lock.FileName)
	addBuilderFlags(cmd.Flags(), &bf)
	return cmd
}
