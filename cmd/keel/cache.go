package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/modindex"
)

func newCacheCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the image and download cache (--cache, KEEL_CACHE)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageError(errors.New("keel cache: want a subcommand: ls, rm, clean, verify, export or import"))
		},
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "ls",
			Short: "List cached images and indexes: key, digest, size",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := g.openCache(cmd)
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
			ValidArgsFunction: func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
				return cacheKeys(cmd, g), cobra.ShellCompDirectiveNoFileComp
			},
			RunE: func(cmd *cobra.Command, keys []string) error {
				c, err := g.openCache(cmd)
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
			Short: "Delete every blob and download no cached image refers to, and abandoned temporary files",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := g.openCache(cmd)
				if err != nil {
					return err
				}
				freed, err := c.Clean()
				if err != nil {
					return err
				}
				store, err := fstree.NewStore(c.FilesDir())
				if err != nil {
					return err
				}
				temps, tempBytes, err := store.Clean()
				if err != nil {
					return err
				}
				mods, err := modindex.Open(c.ModIndexDir(), nil)
				if err != nil {
					return err
				}
				modTemps, modTempBytes, err := mods.Clean()
				if err != nil {
					return err
				}
				temps, tempBytes = temps+modTemps, tempBytes+modTempBytes
				fmt.Fprintf(cmd.OutOrStdout(), "freed %d blobs (%s) and %d temporary files (%s)\n",
					freed.Blobs, humanSize(freed.BlobBytes), freed.Temps+temps, humanSize(freed.TempBytes+tempBytes))
				return nil
			},
		},
		newCacheVerifyCmd(g),
		newCacheExportCmd(g),
		&cobra.Command{
			Use:   "import FILE",
			Short: "Import an OCI image layout tar (as export writes; - for stdin)",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.openCache(cmd)
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

// openCache opens the cache of --cache, with its warnings on stderr.
func (g *globalFlags) openCache(cmd *cobra.Command) (*cache.Cache, error) {
	return cache.Open(g.CacheDir, cache.WithWarnings(warnTo(cmd.ErrOrStderr())))
}

func warnTo(w io.Writer) func(string) {
	return func(msg string) { fmt.Fprintln(w, "warning: "+msg) }
}

func newCacheVerifyCmd(g *globalFlags) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Hash every blob, download and content-store file against its digest; exit 1 listing the bad ones",
		Long: `Verify hashes every entry of the cache (image blobs, downloads and the
content store builds unpack layers into) against its digest, and checks that
every cached image and index has all its blobs. It lists each bad entry and
exits 1 if there is one. With --repair it removes the bad entries and forgets
the images that need them, and exits 0: the next build fetches or rebuilds
what it needs.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.openCache(cmd)
			if err != nil {
				return err
			}
			rep, err := c.Verify(cmd.Context(), repair)
			if err != nil {
				return err
			}
			store, err := fstree.NewStore(c.FilesDir())
			if err != nil {
				return err
			}
			files, bad, err := store.Verify(cmd.Context(), repair)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, p := range rep.Problems {
				how := "bad"
				if p.Removed {
					how = "removed"
				}
				line := fmt.Sprintf("%s: %s: %v", how, p.Path, p.Err)
				if len(p.UsedBy) > 0 {
					line += " (needed by " + strings.Join(p.UsedBy, ", ") + ")"
				}
				fmt.Fprintln(out, line)
			}
			for _, k := range rep.Forgot {
				fmt.Fprintf(out, "forgot: %s (the next build fetches or rebuilds it)\n", k)
			}
			for _, p := range bad {
				how := "bad"
				if repair {
					how = "removed"
				}
				fmt.Fprintf(out, "%s: %s: %v\n", how, p.Path, p.Err)
			}
			n := len(rep.Problems) + len(bad)
			fmt.Fprintf(out, "checked %d blobs and %d content-store files: %d bad\n", rep.Blobs, files, n)
			if n > 0 && !repair {
				return fmt.Errorf("keel cache verify: %d bad entries: run keel cache verify --repair to remove them (the next build fetches or rebuilds what it needs)", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "remove the bad entries and forget the images that need them")
	return cmd
}

func newCacheExportCmd(g *globalFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export [KEY...] -o FILE",
		Short: "Write cached images (all when no key is named) as an OCI image layout tar",
		RunE: func(cmd *cobra.Command, keys []string) (err error) {
			if out == "" {
				return usageError(errors.New("keel cache export: -o FILE is required (- for stdout)"))
			}
			c, err := g.openCache(cmd)
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

// cacheKeys are the keys of the cached images and indexes, for shell
// completion (none when the cache cannot be read).
func cacheKeys(cmd *cobra.Command, g *globalFlags) []string {
	c, err := g.openCache(cmd)
	if err != nil {
		return nil
	}
	items, err := c.List()
	if err != nil {
		return nil
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
}
