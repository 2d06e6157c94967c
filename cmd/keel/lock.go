package main

import (
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

func newLockCmd(g *globalFlags) *cobra.Command {
	var pull bool
	var bf builderFlags
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
			archs := g.Arch
			if len(archs) == 0 {
				archs = s.Arch
			}
			if len(archs) == 0 {
				archs = []string{runtime.GOARCH}
			}
			b, err := g.packageBuilder(cmd.ErrOrStderr(), &bf)
			if err != nil {
				return err
			}
			r := &source.Resolver{Cache: b.Cache, Packages: b, Pull: pull}
			f, err := build.ResolveLock(cmd.Context(), r, s, archs)
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
	addBuilderFlags(cmd.Flags(), &bf)
	return cmd
}
