package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/linuxkit"
	"github.com/keelos/keel/internal/spec"
)

func newConvertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Translate another tool's image configuration into a keel spec",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageError(errors.New("keel convert: want a subcommand: linuxkit"))
		},
	}
	cmd.AddCommand(newConvertLinuxKitCmd())
	return cmd
}

// convertFailed ends keel convert with exit code 2, as a bad spec does;
// its problems are already printed.
type convertFailed struct{ msg string }

func (e convertFailed) Error() string { return e.msg }
func (e convertFailed) Unwrap() error { return &spec.Error{Msg: e.msg} }

func newConvertLinuxKitCmd() *cobra.Command {
	var (
		maps    []string
		formats []string
		output  string
		lenient bool
	)
	cmd := &cobra.Command{
		Use:   "linuxkit FILE.yml...",
		Short: "Translate LinuxKit YAML files into a keel spec",
		Long: `Convert merges LinuxKit YAML files as linuxkit build does (kernel keys of a
later file win, lists are appended) and writes the equivalent keel spec to
stdout (or --output). Each key that keel cannot express is reported on
stderr as FILE:LINE:COL: KEY: not supported: WHY; then no spec is written
and keel exits with 2, unless --lenient, which writes the spec without
those keys. Warnings say what changed on the way. docs/linuxkit.md maps
every LinuxKit key.

Image references stay as they are (keel pulls them) unless --image-map
replaces them: FROM is an image with or without tag (linuxkit/sshd
matches every tag of it), TO a keel package directory, another image, or
nothing to leave the image out. Relative package paths and file sources
are relative to the spec's directory: --output's, else the current one.`,
		Example: `  keel convert linuxkit sshd.yml > build.toml
  keel convert linuxkit --image-map linuxkit/init=./init --image-map linuxkit/runc= \
      --image-map linuxkit/containerd= --image-map linuxkit/kernel=./kernel/debian-cloud \
      --image-map linuxkit/sshd=./pkg/sshd base.yml sshd.yml -o build.toml
  keel convert linuxkit --lenient --format gcp,raw-efi linuxkit.yml > build.toml`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, files []string) error {
			var opts linuxkit.Options
			for _, m := range maps {
				mp, err := linuxkit.ParseMapping(m)
				if err != nil {
					return usageError(fmt.Errorf("--image-map %w", err))
				}
				opts.ImageMap = append(opts.ImageMap, mp)
			}
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			opts.WorkDir, opts.OutDir, opts.Formats = wd, wd, formats
			if home, err := os.UserHomeDir(); err == nil {
				opts.HomeDir = home
			}
			if output != "" {
				abs, err := filepath.Abs(output)
				if err != nil {
					return err
				}
				opts.OutDir = filepath.Dir(abs)
			}
			inputs := make([]linuxkit.Input, len(files))
			for i, f := range files {
				data, err := readBounded(f, linuxkit.MaxInputSize)
				if err != nil {
					return usageError(err)
				}
				inputs[i] = linuxkit.Input{Name: f, Data: data}
			}
			res, err := linuxkit.Convert(inputs, opts)
			if err != nil {
				return usageError(err)
			}
			stderr := cmd.ErrOrStderr()
			for _, p := range res.Problems {
				fmt.Fprintln(stderr, p)
			}
			switch {
			case res.Has(linuxkit.Invalid):
				return convertFailed{"keel convert linuxkit: not a valid LinuxKit configuration; no spec written"}
			case res.Has(linuxkit.Unsupported) && !lenient:
				return convertFailed{"keel convert linuxkit: keel cannot express every key; no spec written (--lenient writes it without them)"}
			}
			if output == "" {
				_, err := cmd.OutOrStdout().Write(res.TOML)
				return err
			}
			return writeFileAtomic(output, res.TOML)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&maps, "image-map", nil, "replace an image: FROM=TO (TO a package directory, an image, or empty to leave it out); repeatable")
	f.StringSliceVar(&formats, "format", nil, "[output] formats of the spec, keel's or LinuxKit's names (gcp, iso-efi-initrd, …)")
	f.StringVarP(&output, "output", "o", "", "write the spec to this file instead of stdout")
	f.BoolVar(&lenient, "lenient", false, "write the spec even when keys keel cannot express are left out (they are still reported)")
	return cmd
}

// readBounded reads a file of at most limit bytes.
func readBounded(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a LinuxKit configuration", name, limit)
	}
	return data, nil
}

// writeFileAtomic replaces name with data, or leaves it as it was.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// resolveFormats replaces the format names of a --format flag that are
// LinuxKit's (gcp, iso-efi-initrd, …) by keel's, and refuses the others
// with the name to use. keel build calls it on its --format.
func resolveFormats(flag string, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		f, err := spec.ResolveFormat(n)
		if err != nil {
			return nil, usageError(fmt.Errorf("%s: %w", flag, err))
		}
		out = append(out, f)
	}
	return out, nil
}
