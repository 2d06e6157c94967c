package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/spec"
)

func newBuildCmd(g *globalFlags) *cobra.Command {
	var opts build.Options
	var verify bool
	var bf builderFlags
	var n netFlags
	cmd := &cobra.Command{
		Use:   "build [SPEC...]",
		Short: "Build OS images from spec files (default ./build.toml)",
		Long: `Build merges the spec files in order (later scalars win, lists append) and
writes the requested output formats to --dir as NAME-ARCH-… files.`,
		Example: `  keel build
  keel build --format iso-efi,qcow2-efi --dir out build.toml prod.toml
  keel build --dry-run build.toml extra.toml
  keel build --verify-reproducible --format iso-efi
  keel build --frozen   # build.lock's inputs, from the cache only: no network`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Specs = args
			if len(opts.Specs) == 0 {
				opts.Specs = []string{spec.DefaultSpecFile}
			}
			opts.Arch = g.Arch
			opts.CacheDir = g.CacheDir
			opts.Version = versionString()
			opts.Epoch = sourceDateEpoch()
			opts.Stdout = cmd.OutOrStdout()
			opts.Log = g.logger(cmd.ErrOrStderr())
			opts.Progress = cmd.ErrOrStderr()
			opts.Locked, opts.Offline = n.isLocked(), n.isOffline()
			if err := n.check(opts.Pull); err != nil {
				return err
			}
			if verify && opts.Offline {
				return usageError(errors.New("--verify-reproducible builds a second time from an empty cache, which needs downloads: not with --offline or --frozen"))
			}
			var err error
			if opts.Formats, err = resolveFormats("--format", opts.Formats); err != nil {
				return err
			}
			if err := checkBuildFlags(opts); err != nil {
				return err
			}
			// Packages with [build] steps that are not cached yet are
			// solved on this builder.
			if opts.BuildKit, err = bf.config(cmd.ErrOrStderr()); err != nil {
				return err
			}
			var res *build.Result
			if verify && !opts.DryRun {
				res, err = build.Verify(cmd.Context(), opts, g.rebuildInChild(cmd.ErrOrStderr()))
			} else {
				res, err = build.Run(cmd.Context(), opts)
			}
			if err != nil {
				return err
			}
			for _, o := range res.Outputs {
				fmt.Fprintln(cmd.OutOrStdout(), o.Path)
			}
			if verify {
				fmt.Fprintf(cmd.ErrOrStderr(), "reproducible: %d outputs bit-identical in a second build from an empty cache\n", len(res.Outputs))
			}
			return nil
		},
	}
	f := cmd.Flags()
	addArchFlag(cmd, g, "target architectures, comma separated: amd64,arm64 (default: the spec's, else the host's)")
	f.StringSliceVar(&opts.Formats, "format", nil, "output formats, repeated or comma separated: "+strings.Join(format.Names(), ", ")+" (default: the spec's [output] formats)")
	f.StringVar(&opts.Dir, "dir", ".", "directory the outputs are written to")
	f.StringVar(&opts.Name, "name", "", "name prefix of the outputs (default: the spec's name)")
	f.StringVar(&opts.Size, "size", "", "disk image size, like 1GiB (default: the spec's, else fit)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print the merged spec and, as comments, each container's effective configuration and where it came from, and stop")
	addNetFlags(f, &n, "build.lock")
	f.BoolVar(&verify, "verify-reproducible", false, "build a second time from an empty cache (other umask and time zone) and fail at the first output that differs")
	f.BoolVar(&opts.Pull, "pull", false, "re-resolve registry references instead of using the cache")
	addBuilderFlags(f, &bf)
	if err := cmd.RegisterFlagCompletionFunc("format", completeFormats); err != nil {
		panic(err) // the flag is defined just above
	}
	return cmd
}

// completeFormats completes the last of --format's comma-separated
// names from the format table, each with what it is.
func completeFormats(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	done, _ := cutLast(toComplete, ",")
	var out []string
	for _, f := range format.All() {
		out = append(out, done+f.Name+"\t"+f.Summary)
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// cutLast returns s up to and including the last sep, and the rest.
func cutLast(s, sep string) (before, after string) {
	i := strings.LastIndex(s, sep)
	return s[:i+len(sep)], s[i+len(sep):]
}

// sourceDateEpoch is the time every output is stamped with:
// SOURCE_DATE_EPOCH, else epoch.Default.
func sourceDateEpoch() time.Time {
	return epoch.FromSourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
}

// checkBuildFlags rejects flag values the spec would reject, as bad usage.
func checkBuildFlags(opts build.Options) error {
	for _, f := range opts.Formats {
		if _, ok := format.Lookup(f); !ok {
			return usageError(fmt.Errorf("--format %q: want one of %s", f, strings.Join(format.Names(), ", ")))
		}
	}
	if opts.Name != "" {
		if err := spec.CheckName(opts.Name); err != nil {
			return usageError(fmt.Errorf("--name: %w", err))
		}
	}
	if opts.Size != "" {
		if v, err := spec.ParseSize(opts.Size); err != nil || v == 0 {
			if err == nil {
				err = fmt.Errorf("size %q must be above zero", opts.Size)
			}
			return usageError(fmt.Errorf("--size: %w", err))
		}
	}
	return nil
}
