// Package imagetest writes small keel outputs in every format, with the
// repository's own writers, for tests of code that reads them back
// (internal/imageread, keel inspect).
package imagetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/keelos/keel/internal/disk"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/initramfs"
	"github.com/keelos/keel/internal/iso9660"
	"github.com/keelos/keel/internal/qcow2"
	"github.com/keelos/keel/internal/uki"
)

// Tree builds a root holding files (path → content; parents are made).
func Tree(storeDir string, files map[string]string) (*fstree.Tree, error) {
	store, err := fstree.NewStore(storeDir)
	if err != nil {
		return nil, err
	}
	t := fstree.New(store)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	made := map[string]bool{}
	for _, n := range names {
		var parents []string
		for d := path.Dir(n); d != "." && d != "/" && !made[d]; d = path.Dir(d) {
			parents = append(parents, d)
			made[d] = true
		}
		slices.Reverse(parents)
		for _, d := range parents {
			if err := t.AddDir(d, fs.ModeDir|0o755, 0, 0); err != nil {
				return nil, fmt.Errorf("mkdir %s: %w", d, err)
			}
		}
		if err := t.AddFile(n, 0o644, 0, 0, bytes.NewReader([]byte(files[n]))); err != nil {
			return nil, fmt.Errorf("add %s: %w", n, err)
		}
	}
	return t, nil
}

// CPIO is files (as for Tree) archived by keel's initramfs writer,
// uncompressed, with every mtime the default epoch.
func CPIO(storeDir string, files map[string]string) ([]byte, error) {
	root, err := Tree(storeDir, files)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := initramfs.WriteCPIO(&b, root, epoch.Default().Unix()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Stub is a minimal PE32+ EFI application with one section and header
// room for more: enough for uki.Build, which only edits headers and
// appends sections. It is never executed.
func Stub() []byte {
	const (
		peOff      = 0x80
		optSize    = 240 // PE32+ optional header with 16 data directories
		headerSize = 0x400
		textOff    = 0x400
		textSize   = 0x200
	)
	b := make([]byte, textOff+textSize)
	le := binary.LittleEndian
	copy(b, "MZ")
	le.PutUint32(b[0x3c:], peOff)
	copy(b[peOff:], "PE\x00\x00")
	coff := peOff + 4
	le.PutUint16(b[coff:], 0x8664) // amd64
	le.PutUint16(b[coff+2:], 1)    // sections
	le.PutUint16(b[coff+16:], optSize)
	le.PutUint16(b[coff+18:], 0x0022) // executable, large address aware
	opt := coff + 20
	le.PutUint16(b[opt:], 0x20b) // PE32+
	le.PutUint32(b[opt+4:], textSize)
	le.PutUint32(b[opt+16:], 0x1000) // entry point
	le.PutUint32(b[opt+20:], 0x1000) // base of code
	le.PutUint64(b[opt+24:], 0x10000000)
	le.PutUint32(b[opt+32:], 0x1000) // section alignment
	le.PutUint32(b[opt+36:], 0x200)  // file alignment
	le.PutUint32(b[opt+56:], 0x2000) // size of image
	le.PutUint32(b[opt+60:], headerSize)
	le.PutUint16(b[opt+68:], 10) // EFI application
	le.PutUint32(b[opt+108:], 16)
	sec := opt + optSize
	copy(b[sec:], ".text")
	le.PutUint32(b[sec+8:], textSize)
	le.PutUint32(b[sec+12:], 0x1000)
	le.PutUint32(b[sec+16:], textSize)
	le.PutUint32(b[sec+20:], textOff)
	le.PutUint32(b[sec+36:], 0x60000020) // code, execute, read
	b[textOff] = 0xc3                    // ret
	return b
}

// Outputs writes NAME-amd64 outputs of root into dir, in every format
// keel writes, the way internal/build does, and returns their paths by
// format name (kernel+initrd maps to the initrd).
func Outputs(dir, name string, root *fstree.Tree) (map[string]string, error) {
	base := filepath.Join(dir, name+"-amd64")
	out := map[string]string{}
	var initrd bytes.Buffer
	if err := initramfs.WriteEpoch(&initrd, root, initramfs.Zstd, epoch.Default().Unix()); err != nil {
		return nil, err
	}
	write := func(format, p string, data []byte) error {
		out[format] = p
		return os.WriteFile(p, data, 0o644)
	}
	if err := write("kernel+initrd", base+"-initrd.img", initrd.Bytes()); err != nil {
		return nil, err
	}
	if err := os.WriteFile(base+"-kernel", []byte("not a real kernel"), 0o644); err != nil {
		return nil, err
	}
	var tarBuf bytes.Buffer
	if err := root.WriteTar(&tarBuf, epoch.Default()); err != nil {
		return nil, err
	}
	if err := write("tar", base+".tar", tarBuf.Bytes()); err != nil {
		return nil, err
	}
	var ukiBuf bytes.Buffer
	if err := uki.Build(&ukiBuf, Stub(), []byte("KERNEL"), initrd.Bytes(), "console=ttyS0", "ID=keel\n"); err != nil {
		return nil, err
	}
	if err := write("uki", base+".efi", ukiBuf.Bytes()); err != nil {
		return nil, err
	}
	const bootName = "EFI/BOOT/BOOTX64.EFI"

	// iso-efi: a FAT image holding the UKI, inside an ISO.
	files := fstree.MemFiles{{Path: bootName, Data: ukiBuf.Bytes()}}
	fatPath := filepath.Join(dir, "efiboot.img")
	ff, err := os.Create(fatPath)
	if err != nil {
		return nil, err
	}
	err = fat.Write(ff, 0, fat.Size(files), files, fat.Options{Label: "KEEL-EFI", Epoch: epoch.Default()})
	ff.Close()
	if err != nil {
		return nil, err
	}
	img, err := os.ReadFile(fatPath)
	if err != nil {
		return nil, err
	}
	os.Remove(fatPath)
	var iso bytes.Buffer
	err = iso9660.Write(&iso, iso9660.Options{
		VolumeID:     "TEST",
		Files:        fstree.MemFiles{{Path: "EFI/BOOT/EFIBOOT.IMG", Data: img}},
		EFIBootImage: "EFI/BOOT/EFIBOOT.IMG",
		Epoch:        epoch.Default(),
	})
	if err != nil {
		return nil, err
	}
	if err := write("iso-efi", base+"-efi.iso", iso.Bytes()); err != nil {
		return nil, err
	}

	// raw-efi and qcow2-efi.
	rawPath := base + "-efi.raw"
	if err := EFIDisk(rawPath, ukiBuf.Bytes(), 0); err != nil {
		return nil, err
	}
	out["raw-efi"] = rawPath
	rf, err := os.Open(rawPath)
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	st, err := rf.Stat()
	if err != nil {
		return nil, err
	}
	var q bytes.Buffer
	if err := qcow2.Write(&q, rf, st.Size()); err != nil {
		return nil, err
	}
	if err := write("qcow2-efi", base+"-efi.qcow2", q.Bytes()); err != nil {
		return nil, err
	}
	return out, nil
}

// EFIDisk writes a GPT disk at p whose ESP holds ukiData at the amd64
// removable-media path; espSize 0 fits the ESP to it.
func EFIDisk(p string, ukiData []byte, espSize int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	err = disk.WriteEFI(f, disk.EFIOptions{
		Seed: "test", ESPFiles: fstree.MemFiles{{Path: "EFI/BOOT/BOOTX64.EFI", Data: ukiData}},
		ESPLabel: "ESP", ESPSize: espSize, Epoch: epoch.Default(),
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Allocated returns how many bytes f allocated: readers' fuzz targets
// bound it by their input, not by the sizes its headers claim.
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
