package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/spec"
)

func newLockCmd(g *globalFlags) *cobra.Command {
	var pull bool
	var n netFlags
	var bf builderFlags
	cmd := &cobra.Command{
		Use:   "lock [SPEC...]",
		Short: "Write build.lock with the digest of every image and .deb the spec uses",
		Long: `Lock resolves every image the spec names (init, kernel, onboot, services,
onshutdown), for each architecture, builds local packages, and writes
build.lock next to the first spec: the digest of every image, the
SHA-256 of every Debian package inside them, and what each [debian]
section resolved to. 'keel build --locked' then takes all of these from
build.lock, resolves nothing, and fails if anything would differ.

With --offline, the Debian indexes are the last verified ones the cache
keeps and registry tags resolve to the images the cache holds.`,
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				files = []string{spec.DefaultSpecFile}
			}
			if err := n.check(pull); err != nil {
				return err
			}
			if n.isLocked() {
				return usageError(errors.New("keel lock writes build.lock: --locked and --frozen do not apply (use --offline)"))
			}
			f, err := g.resolveSpec(cmd.Context(), cmd.ErrOrStderr(), files, &bf, pull, n)
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
	addArchFlag(cmd, g, "target architectures, comma separated: amd64,arm64 (default: the spec's, else the host's)")
	cmd.Flags().BoolVar(&n.offline, "offline", false, "download nothing: use only what the cache holds (the last verified Debian indexes, cached images)")
	addBuilderFlags(cmd.Flags(), &bf)
	return cmd
}
