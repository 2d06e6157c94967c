package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// formats are the outputs measured one by one, then all together.
var formats = []string{"kernel+initrd", "tar", "uki", "iso-efi", "raw-efi", "qcow2-efi"}

// sizedFormats are only built once, for the sizes table: each is a
// conversion of an output above, timed by the writers section or not at
// all. The BIOS formats are x86 only.
func sizedFormats(arch string) []string {
	f := []string{"iso", "raw", "vhd", "dynamic-vhd", "vhdx", "vmdk", "ova", "gce", "aws"}
	if arch == "amd64" {
		f = append(f, "iso-bios", "raw-bios", "qcow2-bios")
	}
	return f
}

// incrementalService is the service whose source the incremental build
// changes.
const incrementalService = "pkg/ntpd"

// builds measures `keel build` of the reference image, in a copy of the
// checkout (so the incremental edit never touches the real one) with a
// cache of its own.
type builds struct {
	cfg     *config
	src     string // the copy of the checkout
	cache   string
	outputs string // every format of the unchanged reference image
	edit    string // the file the incremental builds change
	edits   int
	env     []string // extra environment for keel
}

// result is one timed keel run.
type result struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

func (r result) cells() []string {
	return []string{seconds(r.wall), mib(r.maxRSS)}
}

func (b *builds) setup() error {
	b.src = filepath.Join(b.cfg.work, "src")
	b.cache = filepath.Join(b.cfg.work, "cache")
	b.outputs = filepath.Join(b.cfg.work, "out")
	out, err := exec.Command("git", "-C", b.cfg.repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		if err := copyPath(filepath.Join(b.cfg.repo, name), filepath.Join(b.src, name)); err != nil {
			return err
		}
	}
	// The file to change: the first Go source of the service.
	err = filepath.WalkDir(filepath.Join(b.src, incrementalService), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if b.edit == "" && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b.edit = p
		}
		return nil
	})
	if err != nil || b.edit == "" {
		return fmt.Errorf("no Go file under %s to change for the incremental build (%v)", incrementalService, err)
	}
	return nil
}

func copyPath(src, dst string) error {
	st, err := os.Lstat(src)
	if err != nil {
		if os.IsNotExist(err) {
			return nil // deleted in the work tree
		}
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case st.Mode().IsRegular():
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, st.Mode().Perm())
	}
	return nil
}

// keel runs one keel command in the copy and times it.
func (b *builds) keel(ctx context.Context, args ...string) (result, error) {
	args = append([]string{"--cache", b.cache}, args...)
	cmd := exec.CommandContext(ctx, b.cfg.keel, args...)
	cmd.Dir = b.src
	cmd.Env = append(os.Environ(), b.env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	r := result{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss << 10 // KiB on Linux
		}
	}
	if err != nil {
		return r, fmt.Errorf("keel %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 3000))
	}
	return r, nil
}

func (b *builds) build(ctx context.Context, dir string, formats ...string) (result, error) {
	return b.keel(ctx, "build", "--arch", b.cfg.arch, "--dir", dir,
		"--format", strings.Join(formats, ","), b.cfg.spec)
}

// repeat runs f cfg.buildRuns times and returns the medians.
func (b *builds) repeat(ctx context.Context, what string, f func() (result, error)) (result, error) {
	var walls, rss []float64
	for i := range b.cfg.buildRuns {
		if b.cfg.buildRuns > 1 {
			logf("build %s (%d of %d)", what, i+1, b.cfg.buildRuns)
		} else {
			logf("build %s", what)
		}
		r, err := f()
		if err != nil {
			return r, err
		}
		walls = append(walls, r.wall.Seconds())
		rss = append(rss, float64(r.maxRSS))
	}
	return result{wall: time.Duration(median(walls) * float64(time.Second)), maxRSS: int64(median(rss))}, nil
}

// forget removes every built image from the cache, keeping the downloads.
func (b *builds) forget(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, b.cfg.keel, "cache", "--cache", b.cache, "ls")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("keel cache ls: %w", err)
	}
	var keys []string
	for i, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); i > 0 && len(f) > 0 {
			keys = append(keys, f[0])
		}
	}
	if len(keys) == 0 {
		return nil
	}
	_, err = b.keel(ctx, append([]string{"cache", "rm"}, keys...)...)
	return err
}

// change edits the service's source so that its image must be rebuilt.
func (b *builds) change() error {
	b.edits++
	f, err := os.OpenFile(b.edit, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\n// keel bench: incremental edit %d\n", b.edits)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *builds) measure(ctx context.Context, rep *report) error {
	all := slices.Clone(formats)
	logf("build: every format with an empty cache (downloads included)")
	prime, err := b.build(ctx, b.outputs, append(slices.Clone(all), sizedFormats(b.cfg.arch)...)...)
	if err != nil {
		return err
	}
	if b.cfg.skip["build"] {
		return nil
	}
	s := rep.add(fmt.Sprintf("keel build of %s (%s), wall time and peak RSS", b.cfg.spec, b.cfg.arch),
		"FORMAT", "COLD", "COLD RSS", "WARM", "WARM RSS", "INCR", "INCR RSS")
	groups := append([][]string{}, all)
	for _, f := range formats {
		groups = append(groups, []string{f})
	}
	for _, g := range groups {
		name := strings.Join(g, ",")
		if len(g) > 1 {
			name = "all six"
		}
		dir := filepath.Join(b.cfg.work, "builds", strings.ReplaceAll(name, " ", "-"))
		cold, err := b.repeat(ctx, name+": cold", func() (result, error) {
			if err := b.forget(ctx); err != nil {
				return result{}, err
			}
			return b.build(ctx, dir, g...)
		})
		if err != nil {
			return err
		}
		warm, err := b.repeat(ctx, name+": warm", func() (result, error) { return b.build(ctx, dir, g...) })
		if err != nil {
			return err
		}
		incr, err := b.repeat(ctx, name+": incremental", func() (result, error) {
			if err := b.change(); err != nil {
				return result{}, err
			}
			return b.build(ctx, dir, g...)
		})
		if err != nil {
			return err
		}
		row := append([]string{name}, cold.cells()...)
		row = append(row, warm.cells()...)
		s.row(append(row, incr.cells()...)...)
		os.RemoveAll(dir)
	}
	// From scratch but for the downloads: no package image and an empty
	// Go build cache, so every Go package of every binary compiles.
	logf("build all six: cold, empty Go build cache")
	if err := b.forget(ctx); err != nil {
		return err
	}
	b.env = []string{"GOCACHE=" + filepath.Join(b.cfg.work, "gocache")}
	scratch, err := b.build(ctx, filepath.Join(b.cfg.work, "builds", "scratch"), all...)
	b.env = nil
	os.RemoveAll(filepath.Join(b.cfg.work, "gocache"))
	if err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(b.cfg.work, "builds"))
	s.row(append([]string{"all six, cold, empty GOCACHE"}, append(scratch.cells(), "-", "-", "-", "-")...)...)
	s.row(append([]string{"every format, empty keel cache"}, append(prime.cells(), "-", "-", "-", "-")...)...)
	if b.cfg.buildRuns > 1 {
		s.note("Each cell is the median of %d runs (BENCH_BUILD_RUNS); wall time and RSS separately.", b.cfg.buildRuns)
	}
	s.note("COLD: the .debs and sources already downloaded, no package image built (`keel cache rm` of every key);")
	s.note("      Go's build cache stays warm. WARM: the same build again. INCR: %s changed", rel(b.src, b.edit))
	s.note("      (a comment appended), the rest cached. RSS: peak of keel and the processes it waited for (go build).")
	s.note("      WARM runs no go build: its RSS is keel's own.")
	s.note("\"cold, empty GOCACHE\": COLD with an empty Go build cache (every Go package compiles).")
	s.note("\"empty keel cache\": the very first build, downloads from the Debian mirror included.")
	return nil
}

func rel(base, p string) string {
	if r, err := filepath.Rel(base, p); err == nil {
		return r
	}
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
