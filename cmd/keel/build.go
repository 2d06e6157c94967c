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
	var sign signFlags
	var output string
	cmd := &cobra.Command{
		Use:   "build [SPEC...]",
		Short: "Build OS images from spec files (default ./build.toml)",
		Long: `Build merges the spec files in order (later scalars win, lists append) and
writes the requested output formats to --dir as NAME-ARCH-… files.

With --sign-key and --sign-cert (or KEEL_SIGN_KEY and KEEL_SIGN_CERT) the
UKI, and so every EFI output carrying it, is Authenticode-signed for Secure
Boot; see "keel keys --help" for the keys.`,
		Example: `  keel build
  keel build --format iso-efi,qcow2-efi --dir out build.toml prod.toml
  keel build --dry-run build.toml extra.toml
  keel build --format qcow2-efi -o host.qcow2
  keel build --format tar -o - | tar -t
  keel build --verify-reproducible --format iso-efi
  keel build --frozen   # build.lock's inputs, from the cache only: no network
  keel build --sign-key keys/db.key --sign-cert keys/db.crt --format qcow2-efi`,
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
			if err := sign.load(&opts); err != nil {
				return err
			}
			// Packages with [build] steps that are not cached yet are
			// solved on this builder.
			if opts.BuildKit, err = bf.config(cmd.ErrOrStderr()); err != nil {
				return err
			}
			if output != "" {
				if cmd.Flags().Changed("dir") {
					return usageError(fmt.Errorf("-o %s names the output: not with --dir", output))
				}
				if err := checkSingleOutput(opts, output); err != nil {
					return err
				}
			}
			run := func(opts build.Options) (*build.Result, error) {
				if verify && !opts.DryRun {
					return build.Verify(cmd.Context(), opts, g.rebuildInChild(cmd.ErrOrStderr(), sign))
				}
				return build.Run(cmd.Context(), opts)
			}
			var res *build.Result
			if output != "" {
				res, err = buildToOutput(cmd.Context(), opts, output, run, cmd.OutOrStdout())
			} else {
				res, err = run(opts)
			}
			if err != nil {
				return err
			}
			for _, o := range res.Outputs {
				if output != "-" { // stdout holds the image
					fmt.Fprintln(cmd.OutOrStdout(), o.Path)
				}
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
	f.StringVarP(&output, "output", "o", "", "write the one image of a build of one format for one architecture to FILE, or to stdout for -, instead of --dir (no SBOM)")
	f.StringVar(&opts.Name, "name", "", "name prefix of the outputs (default: the spec's name)")
	f.StringVar(&opts.Size, "size", "", "disk image size, like 1GiB (default: the spec's, else fit)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print the merged spec and, as comments, each container's effective configuration and where it came from, and stop")
	addNetFlags(f, &n, "build.lock")
	f.BoolVar(&verify, "verify-reproducible", false, "build a second time from an empty cache (other umask and time zone) and fail at the first output that differs")
	f.BoolVar(&opts.Pull, "pull", false, "re-resolve registry references instead of using the cache")
	f.StringVar(&sign.Key, "sign-key", "", "PEM private key (RSA ≥2048 bits or ECDSA P-256) that Authenticode-signs the UKI for Secure Boot (default $KEEL_SIGN_KEY)")
	f.StringVar(&sign.Cert, "sign-cert", "", "X.509 certificate (PEM or DER) of --sign-key, the db certificate firmware trusts (default $KEEL_SIGN_CERT)")
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
