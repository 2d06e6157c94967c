package build

import (
	"context"
	"fmt"
	"os"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/format"
)

// writer writes the files of format f (o.path(f, i) for each of its
// suffixes) from the intermediates o makes.
type writer func(ctx context.Context, o *archOutputs, f format.Descriptor) error

// formatWriters are the writers of the formats of format.All, by name.
// A format is an entry in that table and its writer here; a test checks
// that the two tables name the same formats.
func formatWriters() map[string]writer {
	return map[string]writer{
		format.KernelInitrd: writeKernelInitrd,
		format.Tar:          writeTar,
		format.UKI:          writeUKIFile,
		format.ISOEFI:       isoWriter(true, false),
		format.ISOBIOS:      isoWriter(false, true),
		// The one ISO for every machine: EFI, and BIOS where there is one.
		format.ISO:        isoWriter(true, true),
		format.RawEFI:     writeRawFormat,
		format.RawBIOS:    writeRawFormat,
		format.Raw:        writeRawFormat,
		format.Qcow2EFI:   convertRaw(encodeQcow2),
		format.Qcow2BIOS:  convertRaw(encodeQcow2),
		format.VHD:        convertRaw(encodeVHD),
		format.DynamicVHD: convertRaw(encodeDynamicVHD),
		format.VHDX:       convertRaw(encodeVHDX),
		format.VMDK:       convertRaw(encodeVMDK),
		format.OVA:        convertRaw(encodeOVA),
		format.GCE:        convertRaw(encodeGCE),
		format.AWS:        writeRawFormat,
		format.RPi:        writeRPi,
	}
}

// writeKernelInitrd writes the kernel, the initramfs and the command
// line, one file each, for boot loaders and `keel run qemu`.
func writeKernelInitrd(ctx context.Context, o *archOutputs, f format.Descriptor) error {
	initrd, err := o.initramfs(ctx)
	if err != nil {
		return err
	}
	files := [][]byte{o.sys.kernel, initrd, []byte(o.sys.cmdline.String() + "\n")}
	if len(files) != len(f.Suffixes) {
		return fmt.Errorf("%s: %d files for %d names", f.Name, len(files), len(f.Suffixes))
	}
	for i, data := range files {
		if err := o.write(ctx, f, i, func(w *os.File) error {
			_, err := ctxio.Writer(ctx, w).Write(data)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// writeTar writes the root tree.
func writeTar(ctx context.Context, o *archOutputs, f format.Descriptor) error {
	return o.write(ctx, f, 0, func(w *os.File) error { return o.sys.root.WriteTar(ctxio.Writer(ctx, w), o.b.epoch) })
}

// writeUKIFile writes the UKI.
func writeUKIFile(ctx context.Context, o *archOutputs, f format.Descriptor) error {
	uki, err := o.ukiImage(ctx)
	if err != nil {
		return err
	}
	return o.write(ctx, f, 0, func(w *os.File) error {
		_, err := ctxio.Writer(ctx, w).Write(uki)
		return err
	})
}

// isoWriter writes an ISO booting the UKI through EFI, ISOLINUX on a
// BIOS (on amd64), or both.
func isoWriter(efi, bios bool) writer {
	return func(ctx context.Context, o *archOutputs, f format.Descriptor) error {
		var boot isoBoot
		if efi {
			uki, err := o.ukiImage(ctx)
			if err != nil {
				return err
			}
			boot.bootName, boot.uki = efiBootName(o.sys.arch), uki
		}
		if bios {
			var err error
			if boot.bios, err = o.biosBoot(ctx); err != nil {
				return err
			}
		}
		return o.write(ctx, f, 0, func(w *os.File) error {
			return writeISO(ctx, w, o.b.stage, o.b.spec.Name, boot, o.b.epoch)
		})
	}
}
