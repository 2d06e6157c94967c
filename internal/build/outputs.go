package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/sbom"
)

// ukiFormats are the outputs that carry the UKI (an EFI boot path).
var ukiFormats = append([]string{"uki", "iso-efi", "iso"}, diskFormats...)

// supportedFormats are the output formats this build of keel writes; all
// but tar boot, so all but tar need the initramfs.
var supportedFormats = append([]string{"kernel+initrd", "tar", "iso-bios", "rpi"}, ukiFormats...)

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

func (b *builder) writeOutputs(ctx context.Context, sys *system) ([]Output, error) {
	formats := b.spec.Output.Formats
	// Every output is written into the staging directory under its final
	// name, and reported under the name it will have once committed.
	base := filepath.Join(b.stage, b.spec.Name+"-"+sys.arch)
	var outs []Output
	record := func(format, path string, size int64) {
		final := filepath.Join(b.opts.Dir, filepath.Base(path))
		outs = append(outs, Output{Arch: sys.arch, Format: format, Path: final, Size: size})
		b.logf("%s: wrote %s (%s)", sys.arch, final, humanSize(size))
	}
	has := func(f ...string) bool {
		for _, x := range f {
			if slices.Contains(formats, x) {
				return true
			}
		}
		return false
	}

	n, err := writeBytes(ctx, base+sbom.FileSuffix, sys.sbom)
	if err != nil {
		return nil, err
	}
	record("sbom", base+sbom.FileSuffix, n)

	cleanupRoot, err := b.prepareRoot(ctx, sys)
	if err != nil {
		return nil, err
	}
	defer cleanupRoot()

	var initrd []byte
	if slices.ContainsFunc(formats, func(f string) bool { return f != "tar" }) {
		b.logf("%s: writing initramfs", sys.arch)
		var buf bytes.Buffer
		if err := writeInitramfs(ctxio.Writer(ctx, &buf), sys.bootRoot(), b.epoch); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
		initrd = buf.Bytes()
		if err := b.checkInitrdSize(sys, len(initrd)); err != nil {
			return nil, err
		}
	}
	if has("kernel+initrd") {
		for _, f := range []struct {
			suffix string
			data   []byte
		}{{"-kernel", sys.kernel}, {"-initrd.img", initrd}, {"-cmdline", []byte(sys.cmdline + "\n")}} {
			n, err := writeBytes(ctx, base+f.suffix, f.data)
			if err != nil {
				return nil, err
			}
			record("kernel+initrd", base+f.suffix, n)
		}
	}
	if has("tar") {
		b.logf("%s: writing tar", sys.arch)
		n, err := writeOutput(ctx, base+".tar", func(f *os.File) error { return sys.root.WriteTar(ctxio.Writer(ctx, f), b.epoch) })
		if err != nil {
			return nil, err
		}
		record("tar", base+".tar", n)
	}
	var bios *biosBoot
	if has("iso-bios", "iso") && sys.arch == "amd64" {
		if bios, err = b.biosBoot(ctx, sys, initrd); err != nil {
			return nil, err
		}
	}
	if has("iso-bios") {
		b.logf("%s: writing iso-bios", sys.arch)
		p := base + "-bios.iso"
		n, err := writeOutput(ctx, p, func(f *os.File) error {
			return writeISO(ctx, f, b.stage, b.spec.Name, isoBoot{bios: bios}, b.epoch)
		})
		if err != nil {
			return nil, err
		}
		record("iso-bios", p, n)
	}
	if has("rpi") {
		if err := b.writeRPi(ctx, sys, base, initrd, record); err != nil {
			return nil, err
		}
	}
	if !has(ukiFormats...) {
		return outs, nil
	}
	stub, err := b.efiStub(ctx, sys.arch)
	if err != nil {
		return nil, err
	}
	kernel, err := efiKernel(sys.kernel, sys.arch)
	if err != nil {
		return nil, err
	}
	var uki bytes.Buffer
	if err := writeUKI(ctxio.Writer(ctx, &uki), stub, kernel, initrd, sys.cmdline, b.osRelease()); err != nil {
		return nil, fmt.Errorf("uki: %w", err)
	}
	// Signed here, once: every output below carries these bytes.
	ukiData, err := b.signEFI("uki", uki.Bytes())
	if err != nil {
		return nil, err
	}
	if has("uki") {
		n, err := writeBytes(ctx, base+".efi", ukiData)
		if err != nil {
			return nil, err
		}
		record("uki", base+".efi", n)
	}
	bootName := efiBootName(sys.arch)
	for _, iso := range []struct {
		format, suffix string
		boot           isoBoot
	}{
		{"iso-efi", "-efi.iso", isoBoot{bootName: bootName, uki: ukiData}},
		// The one ISO for every machine: EFI, and BIOS where there is one.
		{"iso", ".iso", isoBoot{bootName: bootName, uki: ukiData, bios: bios}},
	} {
		if !has(iso.format) {
			continue
		}
		b.logf("%s: writing %s", sys.arch, iso.format)
		p := base + iso.suffix
		n, err := writeOutput(ctx, p, func(f *os.File) error { return writeISO(ctx, f, b.stage, b.spec.Name, iso.boot, b.epoch) })
		if err != nil {
			return nil, err
		}
		record(iso.format, p, n)
	}
	if has(diskFormats...) {
		if err := b.writeDisks(ctx, sys, base, bootName, ukiData, initrd, has, record); err != nil {
			return nil, err
		}
	}
	return outs, nil
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
