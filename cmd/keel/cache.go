package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/cache"
)

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the image and download cache (--cache, KEEL_CACHE)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageError(errors.New("keel cache: want a subcommand: ls, rm, clean, export or import"))
		},
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "ls",
			Short: "List cached images and indexes: key, digest, size",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := cache.Open(global.CacheDir)
				if err != nil {
					return err
				}
				items, err := c.List()
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KEY\tDIGEST\tSIZE")
				for _, it := range items {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Key, it.Digest, humanSize(it.Size))
				}
				return tw.Flush()
			},
		},
		&cobra.Command{
			Use:   "rm KEY...",
			Short: "Forget cached images (run clean to free their space)",
			Args:  usageArgs(cobra.MinimumNArgs(1)),
			RunE: func(_ *cobra.Command, keys []string) error {
				c, err := cache.Open(global.CacheDir)
				if err != nil {
					return err
				}
				for _, k := range keys {
					if err := c.Remove(k); err != nil {
						return err
					}
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "clean",
			Short: "Delete every blob and download no cached image refers to",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(*cobra.Command, []string) error {
				c, err := cache.Open(global.CacheDir)
				if err != nil {
					return err
				}
				return c.Clean()
			},
		},
		newCacheExportCmd(),
		&cobra.Command{
			Use:   "import FILE",
			Short: "Import an OCI image layout tar (as export writes; - for stdin)",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cache.Open(global.CacheDir)
				if err != nil {
					return err
				}
				var r io.Reader = cmd.InOrStdin()
				if args[0] != "-" {
					f, err := os.Open(args[0])
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
				return c.Import(r)
			},
		},
	)
	return cmd
}

func newCacheExportCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export [KEY...] -o FILE",
		Short: "Write cached images (all when no key is named) as an OCI image layout tar",
		RunE: func(cmd *cobra.Command, keys []string) (err error) {
			if out == "" {
				return usageError(errors.New("keel cache export: -o FILE is required (- for stdout)"))
			}
			c, err := cache.Open(global.CacheDir)
			if err != nil {
				return err
			}
			if out == "-" {
				return c.Export(cmd.OutOrStdout(), keys...)
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			defer func() {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(out)
				}
			}()
			return c.Export(f, keys...)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (- for stdout)")
	return cmd
}
