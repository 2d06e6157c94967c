package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/grubpc"
	"github.com/keelos/keel/internal/sbom"
)

// writeOutput writes one output file at path, in the staging directory
// of the output set (outdir), removing what it wrote if write fails.
// Outdir makes the file durable and moves it into place with the rest of
// the set once every output is written.
func writeOutput(ctx context.Context, path string, write func(f *os.File) error) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (int64, error) {
		f.Close()
		os.Remove(path)
		if ctx.Err() != nil {
			err = ctx.Err() // what a cancelled writer fails with varies
		}
		return 0, fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	if err := write(f); err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	// The mode is the same under any umask.
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return 0, err
	}
	return st.Size(), nil
}

func writeBytes(ctx context.Context, path string, data []byte) (int64, error) {
	return writeOutput(ctx, path, func(f *os.File) error {
		_, err := ctxio.Writer(ctx, f).Write(data)
		return err
	})
}

// archOutputs writes one architecture's outputs: it walks the format
// table, writing each format asked for, and makes the intermediates the
// formats are made from (format.Source) once, when the first format that
// needs one asks for it.
type archOutputs struct {
	b    *builder
	sys  *system
	base string // the staging path every output's file name starts with: NAME-ARCH
	outs []Output

	// The intermediates made so far.
	initrd   []byte
	uki      []byte
	isolinux *biosBoot
	grub     grubpc.ReadFile
	disks    map[format.Source]bootDisk
	raws     map[format.Source]rawFile
	cleanups []func()
}

// rawFile is a raw disk written to a file: an output (format is its
// name) or a temporary one that the formats made from it read.
type rawFile struct {
	path   string
	size   int64
	format string // "" for a temporary file
}

func (b *builder) writeOutputs(ctx context.Context, sys *system) ([]Output, error) {
	return b.writeFormats(ctx, sys, format.All(), formatWriters())
}

// writeFormats writes the SBOM and, in the order of table, every format
// of it that the spec asks for, with its writer.
func (b *builder) writeFormats(ctx context.Context, sys *system, table []format.Descriptor, writers map[string]writer) ([]Output, error) {
	o := &archOutputs{
		b: b, sys: sys,
		// Every output is written into the staging directory under its
		// final name, and reported under the name it will have once
		// committed.
		base:  filepath.Join(b.stage, b.spec.Name+"-"+sys.arch),
		disks: map[format.Source]bootDisk{},
		raws:  map[format.Source]rawFile{},
	}
	defer o.close()
	n, err := writeBytes(ctx, o.base+sbom.FileSuffix, sys.sbom)
	if err != nil {
		return nil, err
	}
	o.record("sbom", o.base+sbom.FileSuffix, n)
	for _, f := range table {
		if !o.wants(f.Name) || o.written(f.Name) {
			continue
		}
		if !f.Boots(sys.arch) {
			return nil, fmt.Errorf("output format %q: %s, not %s (%s)", f.Name, f.ArchWhy, sys.arch, f.Instead)
		}
		write, ok := writers[f.Name]
		if !ok {
			return nil, fmt.Errorf("output format %q has no writer", f.Name)
		}
		b.logf("%s: writing %s", sys.arch, f.Name)
		if err := write(ctx, o, f); err != nil {
			return nil, err
		}
	}
	return o.outs, nil
}

// wants reports whether the spec asks for the format.
func (o *archOutputs) wants(name string) bool {
	return slices.Contains(o.b.spec.Output.Formats, name)
}

// written reports whether the format's files are written already: as
// the intermediate of a format before it (the cloud disk, as aws).
func (o *archOutputs) written(name string) bool {
	return slices.ContainsFunc(o.outs, func(out Output) bool { return out.Format == name })
}

// needs reports whether a format asked for is made from s directly.
func (o *archOutputs) needs(s format.Source) bool {
	return slices.ContainsFunc(o.b.spec.Output.Formats, func(name string) bool {
		f, ok := format.Lookup(name)
		return ok && f.From == s
	})
}

// path is where file i of format f is written.
func (o *archOutputs) path(f format.Descriptor, i int) string { return o.base + f.Suffixes[i] }

func (o *archOutputs) record(format, path string, size int64) {
	final := filepath.Join(o.b.opts.Dir, filepath.Base(path))
	o.outs = append(o.outs, Output{Arch: o.sys.arch, Format: format, Path: final, Size: size})
	o.b.logf("%s: wrote %s (%s)", o.sys.arch, final, humanSize(size))
}

// write writes file i of format f with fn and records it.
func (o *archOutputs) write(ctx context.Context, f format.Descriptor, i int, fn func(*os.File) error) error {
	p := o.path(f, i)
	n, err := writeOutput(ctx, p, fn)
	if err != nil {
		return err
	}
	o.record(f.Name, p, n)
	return nil
}

// close removes the temporary files.
func (o *archOutputs) close() {
	for _, c := range o.cleanups {
		c()
	}
}

// initramfs is the initramfs of the boot root, refused when an initrd
// root would not fit the target's memory.
func (o *archOutputs) initramfs(ctx context.Context) ([]byte, error) {
	if o.initrd != nil {
		return o.initrd, nil
	}
	o.b.logf("%s: writing initramfs", o.sys.arch)
	var buf bytes.Buffer
	if err := writeInitramfs(ctxio.Writer(ctx, &buf), o.sys.bootRoot(), o.b.epoch); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if err := o.b.checkInitrdSize(o.sys, buf.Len()); err != nil {
		return nil, err
	}
	o.initrd = buf.Bytes()
	return o.initrd, nil
}

// ukiImage is the UKI: the EFI stub, the kernel, the initramfs and the
// command line.
func (o *archOutputs) ukiImage(ctx context.Context) ([]byte, error) {
	if o.uki != nil {
		return o.uki, nil
	}
	initrd, err := o.initramfs(ctx)
	if err != nil {
		return nil, err
	}
	stub, err := o.b.efiStub(ctx, o.sys.arch)
	if err != nil {
		return nil, err
	}
	kernel, err := efiKernel(o.sys.kernel, o.sys.arch)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := writeUKI(ctxio.Writer(ctx, &buf), stub, kernel, initrd, o.sys.cmdline.String(), o.b.osRelease()); err != nil {
		return nil, fmt.Errorf("uki: %w", err)
	}
	o.uki = buf.Bytes()
	return o.uki, nil
}

// biosBoot is what ISOLINUX boots on a BIOS; nil on an architecture
// without one.
func (o *archOutputs) biosBoot(ctx context.Context) (*biosBoot, error) {
	if o.isolinux != nil || o.sys.arch != "amd64" {
		return o.isolinux, nil
	}
	initrd, err := o.initramfs(ctx)
	if err != nil {
		return nil, err
	}
	o.isolinux, err = o.b.biosBoot(ctx, o.sys, initrd)
	return o.isolinux, err
}

// grubFiles are GRUB's BIOS files.
func (o *archOutputs) grubFiles(ctx context.Context) (grubpc.ReadFile, error) {
	if o.grub != nil {
		return o.grub, nil
	}
	var err error
	o.grub, err = o.b.grubFiles(ctx)
	return o.grub, err
}
func efiBootName(arch string) string {
	if arch == "arm64" {
		return "EFI/BOOT/BOOTAA64.EFI"
	}
	return "EFI/BOOT/BOOTX64.EFI"
}

// osRelease is the .osrel section of the UKI.
func (b *builder) osRelease() string {
	return fmt.Sprintf("NAME=keel\nID=keel\nPRETTY_NAME=\"keel (%s)\"\nIMAGE_ID=%s\n", b.spec.Name, b.spec.Name)
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

// efiKernel returns the kernel as an EFI executable: x86 bzImages are
// one already; Debian's arm64 vmlinuz is a gzip-compressed Image, which
// systemd's stub cannot start, so it is decompressed.
func efiKernel(kernel []byte, arch string) ([]byte, error) {
	if arch == "arm64" && len(kernel) > 2 && kernel[0] == 0x1f && kernel[1] == 0x8b {
		return gunzip(kernel)
	}
	return kernel, nil
}
