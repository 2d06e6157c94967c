package build

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/spec"
	"github.com/keelos/keel/tools"
)

// efiStub returns systemd-boot's EFI stub for arch, from keel's efi-stub
// tool package (built from Debian's systemd-boot-efi like any package).
func (b *builder) efiStub(ctx context.Context, arch string) ([]byte, error) {
	name := "usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	if arch == "arm64" {
		name = "usr/lib/systemd/boot/efi/linuxaa64.efi.stub"
	}
	files, err := b.toolFiles(ctx, "efi-stub", arch, name)
	if err != nil {
		return nil, err
	}
	return files[0], nil
}

// biosBoot gathers what ISOLINUX boots on a BIOS: the kernel as it is
// (bzImage), the initramfs and the command line.
func (b *builder) biosBoot(ctx context.Context, sys *system, initrd []byte) (*biosBoot, error) {
	files, err := b.toolFiles(ctx, "isolinux", sys.arch,
		"usr/lib/ISOLINUX/isolinux.bin", "usr/lib/syslinux/modules/bios/ldlinux.c32", "usr/lib/ISOLINUX/isohdpfx.bin")
	if err != nil {
		return nil, err
	}
	return &biosBoot{isolinux: files[0], ldlinux: files[1], isohdpfx: files[2], kernel: sys.kernel, initrd: initrd, cmdline: sys.cmdline}, nil
}

// toolTree builds one of keel's tools/ packages for arch. The package is
// written out to a temporary directory to be built from, which progress
// does not name: it is gone when the build ends.
func (b *builder) toolTree(ctx context.Context, tool, arch string) (*fstree.Tree, error) {
	tmp, err := os.MkdirTemp("", "keel-tools-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir, err := tools.Materialize(tool, tmp)
	if err != nil {
		return nil, err
	}
	b.logf("%s: %s: resolving keel's tools/%s package", arch, tool, tool)
	img, _, err := b.resolver.Resolve(ctx, spec.ImageRef{Ref: dir}, arch)
	if err != nil {
		return nil, fmt.Errorf("keel's tools/%s package: %w", tool, err)
	}
	return b.tree(ctx, img)
}

// toolFiles builds one of keel's tools/ packages for arch and returns the
// named files of it.
func (b *builder) toolFiles(ctx context.Context, tool, arch string, names ...string) ([][]byte, error) {
	t, err := b.toolTree(ctx, tool, arch)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, name := range names {
		e, ok := t.Get(name)
		if !ok {
			return nil, fmt.Errorf("%s: /%s is not in the package", tool, name)
		}
		data, err := readEntry(t, e)
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}

func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompressing kernel: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decompressing kernel: %w", err)
	}
	return out, nil
}
