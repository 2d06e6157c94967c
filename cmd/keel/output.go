package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/spec"
)

// checkSingleOutput refuses -o (one file, or stdout for "-") unless the
// build writes exactly one image file: one architecture, one format, and
// a format that is one file.
func checkSingleOutput(opts build.Options, output string) error {
	if opts.DryRun {
		return usageError(fmt.Errorf("-o %s: --dry-run writes no image", output))
	}
	s, err := spec.Load(opts.Specs...)
	if err != nil {
		return err
	}
	if err := build.ApplyOverrides(s, opts); err != nil {
		return err
	}
	if len(s.Arch) > 1 {
		return usageError(fmt.Errorf("-o writes one file, and the build is for %d architectures (%s): choose one with --arch", len(s.Arch), strings.Join(s.Arch, ", ")))
	}
	if len(s.Output.Formats) == 0 {
		return usageError(fmt.Errorf("-o writes one image, and the spec names no output format: choose one with --format"))
	}
	if len(s.Output.Formats) != 1 {
		return usageError(fmt.Errorf("-o writes one file, and the build writes %d formats (%s): choose one with --format", len(s.Output.Formats), strings.Join(s.Output.Formats, ", ")))
	}
	f, ok := format.Lookup(s.Output.Formats[0])
	if ok && len(f.Suffixes) != 1 {
		return usageError(fmt.Errorf("-o writes one file, and format %s writes %d (NAME-ARCH%s): write them with --dir", f.Name, len(f.Suffixes), strings.Join(f.Suffixes, ", NAME-ARCH")))
	}
	return nil
}

// buildToOutput runs the build into a directory of its own and moves the
// one image it writes to target: renamed into place, so a failed
// build leaves a file there as it was, or copied to stdout for "-". The
// SBOM is not kept: -o is the image alone, as LinuxKit's.
func buildToOutput(ctx context.Context, opts build.Options, target string, run func(build.Options) (*build.Result, error), stdout io.Writer) (*build.Result, error) {
	tmpParent := ""
	if target != "-" {
		tmpParent = filepath.Dir(target)
	}
	dir, err := os.MkdirTemp(tmpParent, ".keel-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	opts.Dir = dir
	res, err := run(opts)
	if err != nil {
		return nil, err
	}
	var image *build.Output
	for i, o := range res.Outputs {
		if o.Format != "sbom" {
			if image != nil {
				return nil, fmt.Errorf("-o: the build wrote more than one image (%s, %s)", filepath.Base(image.Path), filepath.Base(o.Path))
			}
			image = &res.Outputs[i]
		}
	}
	if image == nil {
		return nil, fmt.Errorf("-o: the build wrote no image")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if target != "-" {
		if err := os.Rename(image.Path, target); err != nil {
			return nil, err
		}
		image.Path = target
		res.Outputs = []build.Output{*image}
		return res, nil
	}
	f, err := os.Open(image.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := io.Copy(stdout, f); err != nil {
		return nil, fmt.Errorf("writing the image to stdout: %w", err)
	}
	res.Outputs = []build.Output{*image}
	return res, nil
}
