package build

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/rpi"
)

// RPiFirmwareEnv names a directory that holds the Raspberry Pi firmware
// files (start4.elf, fixup4.dat, …, as in the boot/ directory of
// github.com/raspberrypi/firmware) to use instead of Debian's
// raspi-firmware package, for mirrors that do not carry it.
const RPiFirmwareEnv = "KEEL_RPI_FIRMWARE"

// rpiFirmwareDir is where the raspi-firmware package keeps the files.
const rpiFirmwareDir = "usr/lib/raspi-firmware/"

// rpiFirmwareHelp is how to get the firmware when the build cannot.
const rpiFirmwareHelp = "the rpi format takes the Raspberry Pi firmware from Debian's raspi-firmware " +
	"(suite trixie, component non-free-firmware); use a mirror that carries it (" + debian.MirrorEnv + "), " +
	"or set " + RPiFirmwareEnv + " to a directory holding start4.elf, fixup4.dat (and for a Pi 3 bootcode.bin, start.elf, fixup.dat), " +
	"e.g. the boot/ directory of github.com/raspberrypi/firmware"

// rpiFirmware returns the Pi firmware files by name: the required Pi 4
// ones, the Pi 3 ones the package has, overlays/*.dtbo and the firmware's
// licence (LICENCE.broadcom, which its terms ask to ship with it).
func (b *builder) rpiFirmware(ctx context.Context, arch string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if dir := os.Getenv(RPiFirmwareEnv); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("rpi: %s: %w", RPiFirmwareEnv, err)
		}
		for _, name := range append(slices.Clone(rpi.RequiredFirmware), rpi.OptionalFirmware...) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if os.IsNotExist(err) { // a missing required file is reported by name later
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("rpi: %s=%s: %w", RPiFirmwareEnv, dir, err)
			}
			out[name] = data
		}
		for _, extra := range []string{"LICENCE.broadcom"} {
			if data, err := os.ReadFile(filepath.Join(dir, extra)); err == nil {
				out[extra] = data
			}
		}
		if dtbos, err := filepath.Glob(filepath.Join(dir, "overlays", "*.dtbo")); err == nil {
			for _, p := range dtbos {
				data, err := os.ReadFile(p)
				if err != nil {
					return nil, fmt.Errorf("rpi: %s: %w", RPiFirmwareEnv, err)
				}
				out["overlays/"+filepath.Base(p)] = data
			}
		}
		return out, nil
	}

	t, err := b.toolTree(ctx, "raspi-firmware", arch)
	if err != nil {
		return nil, fmt.Errorf("rpi: %w\n%s", err, rpiFirmwareHelp)
	}
	for _, e := range t.Entries() {
		if !e.Mode.IsRegular() {
			continue
		}
		var name string
		switch {
		case e.Path == "usr/share/doc/raspi-firmware/copyright":
			name = "LICENCE.broadcom"
		case strings.HasPrefix(e.Path, rpiFirmwareDir+"overlays/") && path.Ext(e.Path) == ".dtbo":
			name = strings.TrimPrefix(e.Path, rpiFirmwareDir)
		case strings.HasPrefix(e.Path, rpiFirmwareDir):
			base := strings.TrimPrefix(e.Path, rpiFirmwareDir)
			if slices.Contains(rpi.RequiredFirmware, base) || slices.Contains(rpi.OptionalFirmware, base) {
				name = base
			}
		}
		if name == "" {
			continue
		}
		data, err := readEntry(t, e)
		if err != nil {
			return nil, fmt.Errorf("rpi: firmware %s: %w", e.Path, err)
		}
		out[name] = data
	}
	return out, nil
}

// rpiDTBs returns the Raspberry Pi device trees the kernel image carries
// (Debian keeps them in /usr/lib/linux-image-VERSION/broadcom/, newer
// kernels in /usr/lib/modules/VERSION/dtb/broadcom/), by file name.
func rpiDTBs(sys *system) (map[string][]byte, error) {
	out := map[string][]byte{}
	if sys.ktree == nil {
		return out, nil
	}
	for _, e := range sys.ktree.Entries() {
		name := path.Base(e.Path)
		if !e.Mode.IsRegular() || !rpi.IsPiDTB(name) {
			continue
		}
		if _, dup := out[name]; dup {
			continue
		}
		data, err := readEntry(sys.ktree, e)
		if err != nil {
			return nil, fmt.Errorf("rpi: device tree %s: %w", e.Path, err)
		}
		out[name] = data
	}
	return out, nil
}

// checkRPiFirmware fails, naming the file and how to provide it, when the
// firmware lacks one a Pi 4 needs.
func checkRPiFirmware(fw map[string][]byte) error {
	for _, name := range rpi.RequiredFirmware {
		if _, ok := fw[name]; !ok {
			return fmt.Errorf("rpi: %s is not in the Raspberry Pi firmware: %s", name, rpiFirmwareHelp)
		}
	}
	return nil
}

// checkRPiDTBs fails, naming the device tree and a kernel that has it,
// when the kernel image kernelRef lacks the Pi 4 or Pi 5 one.
func checkRPiDTBs(dtbs map[string][]byte, kernelRef string) error {
	for _, name := range rpi.RequiredDTBs {
		if _, ok := dtbs[name]; !ok {
			return fmt.Errorf("rpi: the kernel image %s has no %s (the Pi firmware boots the kernel with its board's device tree): "+
				"use ./kernel/debian-raspi (Debian trixie's arm64 kernel, which keeps /usr/lib/linux-image-*/broadcom/) "+
				"or a kernel image that carries the Raspberry Pi 4 and 5 device trees", kernelRef, name)
		}
	}
	return nil
}

// writeRPi writes NAME-arm64-rpi.img: an MBR disk whose FAT32 boot
// partition holds what a Raspberry Pi 4 or 5 boots.
func writeRPi(ctx context.Context, o *archOutputs, f format.Descriptor) error {
	b, sys := o.b, o.sys
	initrd, err := o.initramfs(ctx)
	if err != nil {
		return err
	}
	fw, err := b.rpiFirmware(ctx, sys.arch)
	if err != nil {
		return err
	}
	if err := checkRPiFirmware(fw); err != nil {
		return err
	}
	dtbs, err := rpiDTBs(sys)
	if err != nil {
		return err
	}
	if err := checkRPiDTBs(dtbs, b.spec.Kernel.Image.Ref); err != nil {
		return err
	}
	if k := sys.kernel; len(k) > 8 && string(k[:2]) == "MZ" && string(k[4:8]) == "zimg" {
		return fmt.Errorf("rpi: the kernel of %s is an EFI zboot image, which the Pi firmware cannot start: use a kernel package whose vmlinuz is a plain or gzip-compressed arm64 Image (Debian's, such as ./kernel/debian-raspi)", b.spec.Kernel.Image.Ref)
	}
	cmdline := sys.cmdline.withConsoles(rpi.Consoles)
	config := rpi.Config(b.spec.Name)
	files := fstree.MemFiles{
		{Path: rpi.ConfigName, Data: config},
		{Path: rpi.CmdlineName, Data: []byte(cmdline + "\n")},
		{Path: rpi.KernelName, Data: sys.kernel},
		{Path: rpi.InitrdName, Data: initrd},
	}
	for _, m := range []map[string][]byte{fw, dtbs} {
		for _, name := range sortedKeys(m) {
			files = append(files, fstree.MemFile{Path: name, Data: m[name]})
		}
	}
	opts := rpi.Options{
		Seed:  seed(b.spec.Name+"-"+sys.arch+"-rpi", sys.kernel, initrd, config, []byte(cmdline)),
		Files: ctxSource{ctx, files},
		Epoch: b.epoch,
		Size:  b.spec.Output.Size.Bytes(), // 0: fit
	}
	return o.write(ctx, f, 0, func(w *os.File) error { return rpi.WriteDisk(w, opts) })
}
