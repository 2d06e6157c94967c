package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/pkgbuild"
)

func newPkgCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pkg",
		Short: "Build or push packages (directories with a package.toml)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageError(errors.New("keel pkg: want a subcommand: build, push or show-tag"))
		},
	}
	cmd.AddCommand(newPkgBuildCmd(g), newPkgPushCmd(g), newPkgShowTagCmd(g))
	return cmd
}

// usageArgs makes a positional-argument check's failure a usage error
// (exit code 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return usageError(check(cmd, args))
	}
}

func newPkgBuildCmd(g *globalFlags) *cobra.Command {
	var bf builderFlags
	var n netFlags
	var lockPath string
	cmd := &cobra.Command{
		Use:   "build DIR...",
		Short: "Build package images into the cache, for each --arch (default: the host's)",
		Long: `Build each package directory for each architecture and print, per image,
its directory, architecture, manifest digest, size and whether the cache
already held it. With several architectures, an OCI index of the images
is cached too and printed as one more line.

A package with [build] steps is solved by BuildKit on the daemon that
--builder (or KEEL_BUILDKIT_HOST) names, unless the cache already holds
it under the hash of its inputs: then no builder is contacted.

With --locked, each [debian] section takes its packages from the lock
file (--lock) instead of the mirror's indexes; with --offline nothing is
downloaded.`,
		Example: `  keel pkg build ./pkg/sshd
  keel pkg build --arch amd64,arm64 ./pkg/*
  keel pkg build --builder unix:///run/buildkit/buildkitd.sock examples/pkg/hello-c
  keel pkg build --builder tcp://builder.example.com:1234 --builder-tlscacert ca.pem \
      --builder-tlscert cert.pem --builder-tlskey key.pem examples/pkg/hello-c`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			archs := g.Arch
			if len(archs) == 0 {
				archs = []string{runtime.GOARCH}
			}
			b, err := g.packageBuilder(cmd.ErrOrStderr(), &bf, n.isOffline())
			if err != nil {
				return err
			}
			if err := n.pin(cmd.Context(), b, lockPath); err != nil {
				return err
			}
			for _, dir := range dirs {
				for _, arch := range archs {
					if err := buildOne(cmd.Context(), b, dir, arch, cmd.OutOrStdout()); err != nil {
						return build.ExplainNetwork(err)
					}
				}
				if len(archs) > 1 {
					if err := buildIndex(cmd.Context(), b, dir, archs, cmd.OutOrStdout()); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	addPkgNetFlags(cmd.Flags(), &n, &lockPath)
	addBuilderFlags(cmd.Flags(), &bf)
	addArchFlag(cmd, g, "target architectures, comma separated: amd64,arm64 (default: the host's)")
	return cmd
}

// buildIndex caches the OCI index of a package's images (built already,
// so all cache hits) and prints it.
func buildIndex(ctx context.Context, b *pkgbuild.Builder, dir string, archs []string, out io.Writer) error {
	idx, key, err := b.BuildIndex(ctx, dir, archs)
	if err != nil {
		return err
	}
	dig, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s\t%s\t%s\tindex %s\n", filepath.Clean(dir), strings.Join(slices.Sorted(slices.Values(archs)), ","), dig, key)
	return nil
}

// packageBuilder opens the cache and the host's Debian mirror (when it
// has one: packages without [debian] need none), with the BuildKit
// builder bf names for packages with [build] steps.
// With offline, it downloads nothing.
func (g *globalFlags) packageBuilder(progress io.Writer, bf *builderFlags, offline bool) (*pkgbuild.Builder, error) {
	bk, err := bf.config(progress)
	if err != nil {
		return nil, err
	}
	c, err := cache.Open(g.CacheDir, cache.WithWarnings(warnTo(progress)))
	if err != nil {
		return nil, err
	}
	b := &pkgbuild.Builder{Cache: c, Epoch: sourceDateEpoch(), BuildKit: bk}
	if mirror, err := debian.MirrorFromHost(); err == nil {
		b.Debian = build.NewDebianClient(mirror, c, offline)
	} else {
		g.logger(progress).Debug("no Debian mirror", "err", err)
	}
	if g.Verbose > 0 {
		b.Progress = func(msg string) { fmt.Fprintln(progress, msg) }
	}
	return b, nil
}

func buildOne(ctx context.Context, b *pkgbuild.Builder, dir, arch string, out io.Writer) error {
	start := time.Now()
	res, err := b.BuildResult(ctx, dir, arch)
	if err != nil {
		return err
	}
	dig, err := res.Image.Digest()
	if err != nil {
		return err
	}
	size, err := imageSize(res.Image)
	if err != nil {
		return err
	}
	how := "built"
	if res.CacheHit {
		how = "cached"
	}
	fmt.Fprintf(out, "%s\t%s\t%s\t%s\t%s in %.1fs\n", filepath.Clean(dir), arch, dig, humanSize(size), how, time.Since(start).Seconds())
	return nil
}

// imageSize is the stored size: manifest, config and compressed layers.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	size := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, nil
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newPkgPushCmd(g *globalFlags) *cobra.Command {
	var bf builderFlags
	cmd := &cobra.Command{
		Use:   "push DIR... REGISTRY/REPO | DIR REGISTRY/REPO:TAG",
		Short: "Build packages for each --arch (default: all) and push each as a multi-platform index",
		Long: `Push builds each package for every architecture and pushes one image index
per package. To REGISTRY/REPO, each package goes to REGISTRY/REPO/NAME:TAG,
where TAG is the hash of the package's inputs (what keel pkg show-tag
prints); a full reference REGISTRY/REPO:TAG is used as given, for one
package. Credentials come from the docker config and its credential helpers.`,
		Example: `  keel pkg push ./pkg/sshd ./pkg/getty registry.example.com/keel
  keel pkg push ./pkg/sshd registry.example.com/keel/sshd:1.0`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dirs, dest := args[:len(args)-1], args[len(args)-1]
			to, err := parseDest(dest, len(dirs))
			if err != nil {
				return usageError(err)
			}
			b, err := g.packageBuilder(cmd.ErrOrStderr(), &bf, false)
			if err != nil {
				return err
			}
			for _, dir := range dirs {
				ref, err := pushOne(cmd.Context(), b, dir, pkgArchs(g), to)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return nil
		},
	}
	addBuilderFlags(cmd.Flags(), &bf)
	addArchFlag(cmd, g, "architectures of the image index, comma separated (default: amd64,arm64)")
	return cmd
}

func newPkgShowTagCmd(g *globalFlags) *cobra.Command {
	var bf builderFlags
	var n netFlags
	var lockPath string
	cmd := &cobra.Command{
		Use:   "show-tag DIR...",
		Short: "Print NAME:TAG, the tag keel pkg push gives each package, without building",
		Long: `Show-tag prints, for each package directory, NAME:TAG where TAG is the hash
of the package's inputs for each --arch (default: all): the tag keel pkg
push gives it when pushed to a REGISTRY/REPO. Nothing is built or pushed.`,
		Example: `  keel pkg show-tag ./pkg/sshd
  keel pkg show-tag --frozen --lock build.lock ./pkg/sshd`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.packageBuilder(cmd.ErrOrStderr(), &bf, n.isOffline())
			if err != nil {
				return err
			}
			if err := n.pin(cmd.Context(), b, lockPath); err != nil {
				return err
			}
			for _, dir := range args {
				key, err := b.IndexKey(cmd.Context(), dir, pkgArchs(g))
				if err != nil {
					return build.ExplainNetwork(err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), key)
			}
			return nil
		},
	}
	addPkgNetFlags(cmd.Flags(), &n, &lockPath)
	addBuilderFlags(cmd.Flags(), &bf)
	addArchFlag(cmd, g, "architectures of the image index, comma separated (default: amd64,arm64)")
	return cmd
}

// addPkgNetFlags adds --locked, --offline, --frozen and --lock, the lock
// file that pins the packages' [debian] sections.
func addPkgNetFlags(f *pflag.FlagSet, n *netFlags, lockPath *string) {
	addNetFlags(f, n, "--lock")
	f.StringVar(lockPath, "lock", lock.FileName, "the lock file --locked reads")
}

// pin gives b the [debian] pins of the lock file at path, with --locked.
func (n netFlags) pin(ctx context.Context, b *pkgbuild.Builder, path string) error {
	if !n.isLocked() {
		return nil
	}
	f, err := lock.Read(ctx, path)
	if err != nil {
		return fmt.Errorf("--locked: %w (run `keel lock` first)", err)
	}
	b.Locked = &f
	return nil
}

// pkgArchs is --arch, or every architecture keel builds for.
func pkgArchs(g *globalFlags) []string {
	if len(g.Arch) == 0 {
		return []string{"amd64", "arm64"}
	}
	return g.Arch
}

// destination is where pkg push puts packages: a repository under which
// each goes as NAME:HASH, or one full reference.
type destination struct {
	repo name.Repository
	tag  *name.Tag
}

// parseDest parses REGISTRY/REPO or, for a single package, REGISTRY/REPO:TAG.
func parseDest(dest string, packages int) (destination, error) {
	if t, err := name.NewTag(dest, name.StrictValidation); err == nil {
		if packages != 1 {
			return destination{}, fmt.Errorf("destination %q names one image, but %d packages are pushed: give a REGISTRY/REPO without a tag (each package goes to REPO/NAME:HASH), or push them one by one", dest, packages)
		}
		return destination{tag: &t}, nil
	}
	r, err := name.NewRepository(dest, name.StrictValidation)
	if err != nil {
		return destination{}, fmt.Errorf("destination %q: want REGISTRY/REPO or REGISTRY/REPO:TAG: %w", dest, err)
	}
	return destination{repo: r}, nil
}

// pushOne builds dir for archs and pushes the index; it returns the pushed
// reference with its digest.
func pushOne(ctx context.Context, b *pkgbuild.Builder, dir string, archs []string, to destination) (string, error) {
	idx, key, err := b.BuildIndex(ctx, dir, archs)
	if err != nil {
		return "", err
	}
	ref := to.tag
	if ref == nil {
		pkgName, tag, _ := strings.Cut(key, ":")
		t, err := name.NewTag(to.repo.Name()+"/"+pkgName+":"+tag, name.StrictValidation)
		if err != nil {
			return "", fmt.Errorf("package %s: %w", dir, err)
		}
		ref = &t
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	dig, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return ref.String() + "@" + dig.String(), nil
}
