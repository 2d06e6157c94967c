// Package build is keel's pipeline: a spec becomes images, a root tree and
// the requested output files.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/keelos/keel/internal/buildkit"
	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/modindex"
	"github.com/keelos/keel/internal/outdir"
	"github.com/keelos/keel/internal/pkgbuild"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// Options are the inputs of one `keel build`.
type Options struct {
	Specs    []string // spec files, merged in order
	Formats  []string // overrides [output] formats when set
	Dir      string   // output directory
	Name     string   // overrides the spec's name when set
	Arch     []string // overrides the spec's arch when set
	Size     string   // overrides [output] size when set
	DryRun   bool     // print the merged spec and each container's effective configuration to Stdout, and stop
	Locked   bool     // fail if anything would differ from build.lock; take every image digest and Debian package from it
	Offline  bool     // download nothing: use only what the cache holds
	Pull     bool     // re-resolve registry references
	CacheDir string   // "" = cache.DefaultDir()
	Version  string   // keel's version, recorded in /etc/keel/provenance.json
	// Epoch stamps every file, image and volume the build writes
	// (SOURCE_DATE_EPOCH); the zero value means epoch.Default.
	Epoch time.Time
	// BuildKit is the builder that solves the [build] steps of packages
	// the cache does not hold; nil means the environment's
	// (KEEL_BUILDKIT_HOST, …). Its Progress receives BuildKit's display.
	BuildKit *buildkit.Config

	Stdout   io.Writer    `json:"-"`
	Log      *slog.Logger `json:"-"`
	Progress io.Writer    `json:"-"` // where progress goes (a terminal gets bars)
}

// Result lists what a build wrote.
type Result struct {
	Outputs []Output
	// Roots holds each architecture's assembled root file system, in
	// the order the writers lay it out, so two builds can be compared file
	// by file rather than only byte by byte.
	Roots map[string][]fstree.Entry
}

// Output is one written file.
type Output struct {
	Arch   string
	Format string
	Path   string
	Size   int64
}

func (o Options) progress(msg string) {
	switch {
	case o.Progress != nil:
		fmt.Fprintln(o.Progress, msg)
	case o.Log != nil:
		o.Log.Info(msg)
	}
}

// warn reports what the build repaired on its way (a corrupt cache entry
// fetched or rebuilt), where progress goes, else in the log.
func (o Options) warn(msg string) {
	switch {
	case o.Progress != nil:
		fmt.Fprintln(o.Progress, "warning: "+msg)
	case o.Log != nil:
		o.Log.Warn(msg)
	}
}

// Build runs the pipeline.
func Build(ctx context.Context, opts Options) error {
	_, err := Run(ctx, opts)
	return err
}

// Run runs the pipeline and reports what it wrote.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if len(opts.Specs) == 0 {
		opts.Specs = []string{"build.toml"}
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		opts.Dir = "."
	}
	s, err := spec.Load(opts.Specs...)
	if err != nil {
		return nil, err
	}
	if err := ApplyOverrides(s, opts); err != nil {
		return nil, err
	}
	if !opts.DryRun {
		if err := checkFormats(s); err != nil {
			return nil, err
		}
		if err := checkSources(ctx, s); err != nil {
			return nil, err
		}
	}

	cacheDir := opts.CacheDir
	if cacheDir == "" {
		cacheDir = cache.DefaultDir()
	}
	c, err := cache.Open(cacheDir, cache.WithWarnings(opts.warn))
	if err != nil {
		return nil, err
	}
	stamp := epoch.Default()
	if !opts.Epoch.IsZero() {
		stamp = opts.Epoch.UTC()
	}
	var deb *debian.Client
	if mirror, err := debian.MirrorFromHost(); err == nil {
		deb = NewDebianClient(mirror, c, opts.Offline)
	} else {
		opts.Log.Debug("no Debian mirror", "err", err)
	}
	var locked *lock.File
	if opts.Locked && !opts.DryRun {
		if locked, err = readLock(ctx, opts.Specs[0]); err != nil {
			return nil, err
		}
		if err := checkLockArchs(*locked, s.Arch); err != nil {
			return nil, err
		}
	}
	pb := &pkgbuild.Builder{Cache: c, Debian: deb, Epoch: stamp, Progress: opts.progress, BuildKit: opts.BuildKit, Locked: locked}
	res := &source.Resolver{Cache: c, Packages: pb, Pull: opts.Pull, Offline: opts.Offline, Locked: locked}
	if opts.DryRun {
		return &Result{}, dryRun(ctx, opts, s, res)
	}
	store, err := fstree.NewStore(c.FilesDir(), fstree.WithWarnings(opts.warn))
	if err != nil {
		return nil, err
	}
	modules, err := modindex.Open(c.ModIndexDir(), opts.warn)
	if err != nil {
		return nil, err
	}

	if locked != nil {
		if err := checkLocked(ctx, res, s, *locked, opts.Specs[0]); err != nil {
			return nil, ExplainNetwork(err)
		}
	}
	// The outputs of every architecture are one set, written to a staging
	// directory and moved into place only when all are written (outdir);
	// the directory stays locked against other builds until then.
	out, err := outdir.Open(ctx, opts.Dir, opts.progress)
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %w", opts.Dir, err)
	}
	defer out.Close()
	b := &builder{spec: s, opts: opts, store: store, resolver: res, packages: pb, epoch: stamp, trees: map[string]*fstree.Tree{}, modules: modules, stage: out.Staging()}
	result := &Result{Roots: map[string][]fstree.Entry{}}
	// failed says what became of the set when the build did not finish.
	failed := func(err error) error {
		if ctx.Err() != nil {
			opts.progress(fmt.Sprintf("interrupted: removing the partial outputs; %s keeps what it held before", opts.Dir))
		}
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w (%s keeps its previous outputs: until a build replaces them, it needs room for its own next to them)", err, opts.Dir)
		}
		return err
	}
	for _, arch := range s.Arch {
		outs, root, err := b.buildArch(ctx, arch)
		if err != nil {
			return nil, failed(ExplainNetwork(fmt.Errorf("%s: %w", arch, err)))
		}
		result.Outputs = append(result.Outputs, outs...)
		result.Roots[arch] = root
	}
	names := make([]string, len(result.Outputs))
	for i, o := range result.Outputs {
		names[i] = filepath.Base(o.Path)
	}
	if err := out.Commit(ctx, names); err != nil {
		return nil, failed(fmt.Errorf("output directory %s: %w", opts.Dir, err))
	}
	return result, nil
}

// ApplyOverrides applies the command line's overrides to a loaded spec.
func ApplyOverrides(s *spec.Spec, opts Options) error {
	if opts.Name != "" {
		s.Name = opts.Name
	}
	if len(opts.Arch) > 0 {
		s.Arch = slices.Clone(opts.Arch)
	}
	if len(opts.Formats) > 0 {
		s.Output.Formats = slices.Clone(opts.Formats)
	}
	if opts.Size != "" {
		if err := s.Output.Size.UnmarshalText([]byte(opts.Size)); err != nil {
			return fmt.Errorf("--size: %w", err)
		}
	}
	return nil
}
