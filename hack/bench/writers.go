package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/keelos/keel/internal/erofs"
	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/initramfs"
	"github.com/keelos/keel/internal/iso9660"
	"github.com/keelos/keel/internal/qcow2"
	"github.com/keelos/keel/internal/squashfs"
)

// writerRuns is how many times each writer and tool runs; the median
// counts.
const writerRuns = 3

// job is one comparison: keel's writer and a tool doing the same work.
type job struct {
	name  string
	input int64  // bytes of input, for MB/s
	tool  string // the tool, shortly
	keel  func(out string) error
	other func(ctx context.Context, out string) error
}

// timed is a median time and the size of what was written.
type timed struct {
	d    time.Duration
	size int64
	err  error
}

func measureWriter(out string, f func(string) error) timed {
	var ds []float64
	for range writerRuns {
		os.Remove(out)
		start := time.Now()
		if err := f(out); err != nil {
			return timed{err: err}
		}
		ds = append(ds, time.Since(start).Seconds())
	}
	return timed{d: time.Duration(median(ds) * float64(time.Second)), size: fileSize(out)}
}

func shell(ctx context.Context, dir, script string, env ...string) error {
	cmd := exec.CommandContext(ctx, "sh", "-ec", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", script, err, tail(out.String(), 1000))
	}
	return nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func writeFile(out string, write func(w io.Writer) error) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writers(ctx context.Context, cfg *config, rep *report, outputs string, root *rootTree) error {
	logf("writers: preparing inputs")
	dir := filepath.Join(cfg.work, "writers")
	// rootDir: the root extracted as it is; filesDir: its regular files
	// only (ISO 9660 without Rock Ridge and FAT hold nothing else).
	rootDir := filepath.Join(dir, "root")
	filesDir := filepath.Join(dir, "files")
	tarFile, err := os.Open(root.tar)
	if err != nil {
		return err
	}
	err = fstree.ExtractDir(rootDir, tarFile, fstree.ApplyOptions{AllowDevices: os.Geteuid() == 0})
	tarFile.Close()
	if err != nil {
		return fmt.Errorf("extract %s: %w", root.tar, err)
	}
	files := &subtree{t: root.tree}
	var rootBytes int64
	var top []string
	for _, e := range root.tree.Entries() {
		if !e.Mode.IsRegular() {
			continue
		}
		files.entries = append(files.entries, e)
		rootBytes += e.Size
		dst := filepath.Join(filesDir, e.Path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFromTree(root.tree, e, dst); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(filesDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		top = append(top, quote(filepath.Join(filesDir, e.Name())))
	}

	// The EFI boot image keel puts in its ISO: a FAT volume holding the UKI.
	uki, err := os.ReadFile(root.uki)
	if err != nil {
		return err
	}
	bootName := "EFI/BOOT/BOOTX64.EFI"
	if cfg.arch == "arm64" {
		bootName = "EFI/BOOT/BOOTAA64.EFI"
	}
	espDir := filepath.Join(dir, "esp")
	if err := os.MkdirAll(filepath.Join(espDir, "EFI", "BOOT"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(espDir, bootName), uki, 0o644); err != nil {
		return err
	}
	espFiles := fstree.MemFiles{{Path: bootName, Data: uki}}
	espSize := fat.Size(espFiles)
	isoDir := filepath.Join(dir, "iso")
	efiImg := filepath.Join(isoDir, "EFI", "BOOT", "EFIBOOT.IMG")
	if err := os.MkdirAll(filepath.Dir(efiImg), 0o755); err != nil {
		return err
	}
	if err := writeFAT(efiImg, espSize, espFiles, "KEEL-EFI"); err != nil {
		return err
	}
	img, err := os.ReadFile(efiImg)
	if err != nil {
		return err
	}
	rootFATSize := fat.Size(files)
	rawSize := fileSize(root.raw)
	epoch := time.Unix(0, 0)

	jobs := []job{
		{
			name: "initramfs: root → newc", input: rootBytes, tool: "find | cpio -o -H newc",
			keel: func(out string) error {
				return writeFile(out, func(w io.Writer) error { return initramfs.WriteCPIO(w, root.tree, 0) })
			},
			other: func(ctx context.Context, out string) error {
				return shell(ctx, rootDir, "find . | cpio -o -H newc --quiet > "+quote(out))
			},
		},
		{
			name: "initramfs: root → newc+zstd", input: rootBytes, tool: "… | zstd -7 -T1",
			keel: func(out string) error {
				return writeFile(out, func(w io.Writer) error { return initramfs.WriteEpoch(w, root.tree, initramfs.Zstd, 0) })
			},
			other: func(ctx context.Context, out string) error {
				return shell(ctx, rootDir, "find . | cpio -o -H newc --quiet | zstd -q -7 -T1 > "+quote(out))
			},
		},
		{
			// [output] root = "squashfs": zstd blocks as keel writes them;
			// mksquashfs at its default zstd level 15, with fragments.
			name: "squashfs root", input: rootBytes, tool: "mksquashfs -comp zstd",
			keel: func(out string) error {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = squashfs.Write(f, root.tree, squashfs.Options{})
				return err
			},
			other: func(ctx context.Context, out string) error {
				return shell(ctx, rootDir, "mksquashfs . "+quote(out)+" -noappend -comp zstd -quiet -no-progress >/dev/null")
			},
		},
		{
			name: "erofs root (uncompressed)", input: rootBytes, tool: "mkfs.erofs",
			keel: func(out string) error {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = erofs.Write(f, root.tree, erofs.Options{})
				return err
			},
			other: func(ctx context.Context, out string) error {
				return shell(ctx, rootDir, "mkfs.erofs --quiet -T0 "+quote(out)+" .")
			},
		},
		{
			name: "ISO: EFI boot image (as keel)", input: int64(len(img)), tool: "xorriso -as mkisofs -e",
			keel: func(out string) error {
				return writeFile(out, func(w io.Writer) error {
					return iso9660.Write(w, iso9660.Options{
						VolumeID:     "HOST",
						Files:        fstree.MemFiles{{Path: "EFI/BOOT/EFIBOOT.IMG", Data: img}},
						EFIBootImage: "EFI/BOOT/EFIBOOT.IMG",
						Epoch:        epoch,
					})
				})
			},
			other: func(ctx context.Context, out string) error {
				return shell(ctx, isoDir, "xorriso -as mkisofs -quiet -V HOST -e EFI/BOOT/EFIBOOT.IMG -no-emul-boot -o "+quote(out)+" .")
			},
		},
		{
			name: fmt.Sprintf("ISO: root, %d files", len(files.entries)), input: rootBytes, tool: "xorriso -as mkisofs",
			keel: func(out string) error {
				return writeFile(out, func(w io.Writer) error {
					return iso9660.Write(w, iso9660.Options{VolumeID: "HOST", Files: files, Epoch: epoch})
				})
			},
			other: func(ctx context.Context, out string) error {
				return shell(ctx, filesDir, "xorriso -as mkisofs -quiet -iso-level 2 -V HOST -o "+quote(out)+" .")
			},
		},
		{
			name: "FAT: ESP with the UKI (as keel)", input: int64(len(uki)), tool: "mkfs.vfat + mcopy",
			keel: func(out string) error { return writeFAT(out, espSize, espFiles, "KEEL-EFI") },
			other: func(ctx context.Context, out string) error {
				return shell(ctx, espDir, fmt.Sprintf("mkfs.vfat -C -n KEEL-EFI %s %d >/dev/null && mcopy -s -D o -i %s EFI ::/",
					quote(out), espSize/1024, quote(out)), "MTOOLS_SKIP_CHECK=1")
			},
		},
		{
			name: fmt.Sprintf("FAT: root, %d files", len(files.entries)), input: rootBytes, tool: "mkfs.vfat + mcopy",
			keel: func(out string) error { return writeFAT(out, rootFATSize, files, "KEEL") },
			other: func(ctx context.Context, out string) error {
				return shell(ctx, filesDir, fmt.Sprintf("mkfs.vfat -C -n KEEL %s %d >/dev/null && mcopy -s -D o -i %s %s ::/",
					quote(out), rootFATSize/1024, quote(out), strings.Join(top, " ")), "MTOOLS_SKIP_CHECK=1")
			},
		},
		{
			name: "qcow2: raw-efi disk", input: rawSize, tool: "qemu-img convert -O qcow2",
			keel: func(out string) error {
				src, err := os.Open(root.raw)
				if err != nil {
					return err
				}
				defer src.Close()
				return writeFile(out, func(w io.Writer) error { return qcow2.Write(w, src, rawSize) })
			},
			other: func(ctx context.Context, out string) error {
				return shell(ctx, dir, "qemu-img convert -f raw -O qcow2 "+quote(root.raw)+" "+quote(out))
			},
		},
	}

	s := rep.add(fmt.Sprintf("writers vs tools, same input, median of %d", writerRuns),
		"JOB", "INPUT", "KEEL", "KEEL MB/s", "TOOL", "TOOL TIME", "TOOL MB/s", "TOOL/KEEL", "KEEL OUT", "TOOL OUT")
	for i, j := range jobs {
		logf("writers: %s", j.name)
		k := measureWriter(filepath.Join(dir, fmt.Sprintf("keel-%d.out", i)), j.keel)
		t := measureWriter(filepath.Join(dir, fmt.Sprintf("tool-%d.out", i)), func(out string) error { return j.other(ctx, out) })
		row := []string{j.name, mib(j.input)}
		row = append(row, timeCells(k, j.input)...)
		row = append(row, j.tool)
		row = append(row, timeCells(t, j.input)...)
		ratio := "-"
		if k.err == nil && t.err == nil && k.d > 0 {
			ratio = fmt.Sprintf("%.2f×", t.d.Seconds()/k.d.Seconds())
		}
		row = append(row, ratio, sizeCell(k), sizeCell(t))
		s.row(row...)
		for _, r := range []struct {
			who string
			t   timed
		}{{"keel", k}, {j.tool, t}} {
			if r.t.err != nil {
				s.note("%s, %s failed: %s", j.name, r.who, firstLine(r.t.err.Error()))
			}
		}
		os.Remove(filepath.Join(dir, fmt.Sprintf("keel-%d.out", i)))
		os.Remove(filepath.Join(dir, fmt.Sprintf("tool-%d.out", i)))
	}
	s.note("TOOL/KEEL: the tool's time over keel's; above 1 means keel is faster. MB/s counts input bytes.")
	s.note("keel's writers run in this process, reading file contents from a content store; the tools run")
	s.note("as processes on the same files, extracted (both in the page cache). No run syncs to disk.")
	s.note("zstd -7 matches keel's level (klauspost SpeedBetterCompression ≈ zstd 7-8), single-threaded as keel's.")
	return nil
}

func timeCells(t timed, input int64) []string {
	if t.err != nil {
		return []string{"error", "-"}
	}
	return []string{seconds(t.d), fmt.Sprintf("%.0f", float64(input)/1e6/t.d.Seconds())}
}

func sizeCell(t timed) string {
	if t.err != nil {
		return "-"
	}
	return mib(t.size)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func writeFAT(out string, size int64, files fstree.Source, label string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := fat.Write(f, 0, size, files, fat.Options{Label: label}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFromTree(t *fstree.Tree, e *fstree.Entry, dst string) error {
	r, err := t.Open(e)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, e.Mode.Perm()|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
