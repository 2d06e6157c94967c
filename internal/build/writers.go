package build

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/initramfs"
	"github.com/keelos/keel/internal/iso9660"
	"github.com/keelos/keel/internal/uki"
)

// writeInitramfs writes the root as a zstd newc cpio: zstd unpacks about
// three times faster than gzip under emulation at the same size.
func writeInitramfs(w io.Writer, root *fstree.Tree, epoch time.Time) error {
	return initramfs.WriteEpoch(w, root, initramfs.Zstd, epoch.Unix())
}

func writeUKI(w io.Writer, stub, kernel, initrd []byte, cmdline, osRelease string) error {
	return uki.Build(w, stub, kernel, initrd, cmdline, osRelease)
}

// ctxSource is a Source whose files stop being read once ctx is done,
// which stops the writer copying them.
type ctxSource struct {
	ctx context.Context
	fstree.Source
}

func (s ctxSource) Open(e *fstree.Entry) (io.ReadCloser, error) {
	rc, err := s.Source.Open(e)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{ctxio.Reader(s.ctx, rc), rc}, nil
}

// seed names a disk's content, so GUIDs and FAT serials follow from it.
func seed(name string, parts ...[]byte) string {
	h := sha256.New()
	h.Write([]byte(name))
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d\x00", len(p))
		h.Write(p)
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// isoBoot is what an ISO boots: the UKI through EFI (an El Torito entry
// for a FAT image holding it at the removable-media path bootName), the
// kernel and initrd through ISOLINUX on a BIOS, or both.
type isoBoot struct {
	bootName string
	uki      []byte
	bios     *biosBoot
}

// biosBoot is ISOLINUX with what it loads.
type biosBoot struct {
	isolinux, ldlinux []byte
	isohdpfx          []byte // the isohybrid MBR code
	kernel, initrd    []byte
	cmdline           kernelCmdline
}

// isolinuxConfig boots the one entry at once, talking on the serial port
// too, as the kernel will.
func isolinuxConfig(cmdline kernelCmdline) []byte {
	return []byte("SERIAL 0 115200\nDEFAULT keel\nPROMPT 0\nTIMEOUT 0\n" +
		"LABEL keel\n  LINUX /boot/vmlinuz\n  INITRD /boot/initrd.img\n  APPEND " + cmdline.String() + "\n")
}

// writeISO writes an ISO 9660 image with an El Torito entry per boot path,
// making its EFI boot image in a temporary file in tmpDir.
func writeISO(ctx context.Context, w io.Writer, tmpDir, name string, boot isoBoot, epoch time.Time) error {
	opts := iso9660.Options{VolumeID: volumeID(name), Epoch: epoch}
	var files fstree.MemFiles
	add := func(p string, data []byte) { files = append(files, fstree.MemFile{Path: p, Data: data}) }
	if boot.uki != nil {
		efiFiles := fstree.MemFiles{{Path: boot.bootName, Data: boot.uki}}
		size := fat.Size(efiFiles)
		tmp, err := os.CreateTemp(tmpDir, ".efiboot-*.img")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if err := fat.Write(tmp, 0, size, ctxSource{ctx, efiFiles}, fat.Options{Label: "KEEL-EFI", Epoch: epoch}); err != nil {
			return fmt.Errorf("EFI boot image: %w", err)
		}
		img, err := os.ReadFile(tmp.Name())
		if err != nil {
			return err
		}
		// The UKI is only inside the boot image: a second, plain copy
		// would double the ISO for no boot path that needs it.
		add("EFI/BOOT/EFIBOOT.IMG", img)
		opts.EFIBootImage = "EFI/BOOT/EFIBOOT.IMG"
	}
	if b := boot.bios; b != nil {
		add("boot/vmlinuz", b.kernel)
		add("boot/initrd.img", b.initrd)
		add("isolinux/isolinux.bin", b.isolinux)
		add("isolinux/ldlinux.c32", b.ldlinux)
		add("isolinux/isolinux.cfg", isolinuxConfig(b.cmdline))
		opts.BIOSBootImage = "isolinux/isolinux.bin"
		opts.BootInfoTable = true
		if boot.uki != nil {
			// The image for every machine also boots from a USB stick.
			sum := sha256.Sum256([]byte(seed(name, boot.uki, b.initrd)))
			opts.Hybrid = &iso9660.Hybrid{MBR: b.isohdpfx, ID: binary.BigEndian.Uint32(sum[:4])}
		}
	}
	opts.Files = files
	return iso9660.Write(ctxio.Writer(ctx, w), opts)
}

// volumeID maps an image name onto ISO 9660 d-characters.
func volumeID(name string) string {
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, name)
	if len(id) > 32 {
		id = id[:32]
	}
	return id
}
