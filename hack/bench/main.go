// Command bench measures keel's promises on this machine and prints one
// table: build times and peak RSS per output format (cold, warm and
// incremental), output sizes and what the root is made of, boot times
// under QEMU, init's footprint after boot, and the throughput of keel's
// image writers against the usual tools. `make bench` runs it through
// hack/bench.sh; docs/bench.md explains every number.
//
// Usage: go run ./hack/bench [-keel bin/keel] [-spec build.toml] [-runs N]
// [-work DIR] [-keep] [-skip build,sizes,boot,writers,gobench]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/keelos/keel/internal/qemu"
)

// config is what the flags say.
type config struct {
	repo      string // the keel checkout (the current directory)
	keel      string // the keel binary, absolute
	spec      string // the spec, relative to repo
	arch      string
	runs      int
	buildRuns int
	work      string
	keep      bool
	skip      map[string]bool
	quiet     bool
	budget    time.Duration
}

// report collects the sections of the table in the order they print.
type report struct {
	sections []*section
}

type section struct {
	title  string
	header []string
	rows   [][]string
	notes  []string
}

func (r *report) add(title string, header ...string) *section {
	s := &section{title: title, header: header}
	r.sections = append(r.sections, s)
	return s
}

func (s *section) row(cells ...string) { s.rows = append(s.rows, cells) }

func (s *section) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// print writes the report as one plain-text table, aligned section by
// section: a title line, a header, the rows and the notes. Columns whose
// cells all start with a digit (or are "-") are right-aligned.
func (r *report) print(w io.Writer) {
	for i, s := range r.sections {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s\n", s.title)
		all := append([][]string{s.header}, s.rows...)
		var width []int
		numeric := map[int]bool{}
		for _, cells := range all {
			for c, v := range cells {
				if c >= len(width) {
					width = append(width, 0)
					numeric[c] = c > 0
				}
				width[c] = max(width[c], utf8.RuneCountInString(v))
			}
		}
		for _, cells := range s.rows {
			for c, v := range cells {
				if v != "" && v != "-" && (v[0] < '0' || v[0] > '9') {
					numeric[c] = false
				}
			}
		}
		for _, cells := range all {
			var b strings.Builder
			for c, v := range cells {
				pad := strings.Repeat(" ", width[c]-utf8.RuneCountInString(v))
				if c > 0 {
					b.WriteString("  ")
				}
				if numeric[c] {
					b.WriteString(pad + v)
				} else {
					b.WriteString(v + pad)
				}
			}
			fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		}
		for _, n := range s.notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

var logStart = time.Now()

// logf reports progress on stderr; the table goes to stdout at the end.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench [%5.0fs] %s\n", time.Since(logStart).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	var cfg config
	runs := 3
	if v := os.Getenv("BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: BENCH_RUNS=%q: want a positive number\n", v)
			os.Exit(2)
		}
		runs = n
	}
	buildRuns := 1
	if v := os.Getenv("BENCH_BUILD_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: BENCH_BUILD_RUNS=%q: want a positive number\n", v)
			os.Exit(2)
		}
		buildRuns = n
	}
	skip := os.Getenv("BENCH_SKIP")
	flag.StringVar(&cfg.keel, "keel", "bin/keel", "the keel binary to measure")
	flag.StringVar(&cfg.spec, "spec", "build.toml", "the spec to build (the reference image)")
	flag.StringVar(&cfg.arch, "arch", runtime.GOARCH, "target architecture")
	flag.IntVar(&cfg.runs, "runs", runs, "boots per image, the median is reported (BENCH_RUNS)")
	flag.IntVar(&cfg.buildRuns, "build-runs", buildRuns, "runs of each build measurement, the median is reported (BENCH_BUILD_RUNS)")
	flag.StringVar(&cfg.work, "work", "", "work directory (default: a new one under $TMPDIR)")
	flag.BoolVar(&cfg.keep, "keep", os.Getenv("BENCH_KEEP") != "", "keep the work directory (BENCH_KEEP)")
	flag.StringVar(&skip, "skip", skip, "sections to skip, comma separated: build,sizes,boot,writers,gobench (BENCH_SKIP)")
	flag.Parse()
	cfg.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.skip[s] = true
		}
	}
	if err := run(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(cfg *config) error {
	var err error
	if cfg.repo, err = os.Getwd(); err != nil {
		return err
	}
	if cfg.keel, err = filepath.Abs(cfg.keel); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.keel); err != nil {
		return fmt.Errorf("keel binary: %w (run `make build`)", err)
	}
	if cfg.work == "" {
		if cfg.work, err = os.MkdirTemp("", "keel-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		return err
	}
	if cfg.work, err = filepath.Abs(cfg.work); err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(cfg.work)
	}
	logf("work directory %s", cfg.work)

	// An interrupt stops QEMU and keel, and the work directory goes.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := &report{}
	machine := rep.add("machine", "WHAT", "VALUE")
	machine.row("keel", strings.TrimSpace(output(cfg.keel, "version")))
	machine.row("cpu", fmt.Sprintf("%d × %s", runtime.NumCPU(), cpuModel()))
	machine.row("memory", memTotal())
	machine.row("accel", accel())
	machine.row("load at start", loadAvg())
	machine.row("date", time.Now().UTC().Format(time.RFC3339))

	// Every later section reads the outputs of the all-formats build.
	b := &builds{cfg: cfg}
	if err := b.setup(); err != nil {
		return err
	}
	if err := b.measure(ctx, rep); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	var root *rootTree
	if !cfg.skip["sizes"] || !cfg.skip["writers"] {
		if root, err = loadRoot(cfg, b.outputs); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	if !cfg.skip["sizes"] {
		if err := sizes(rep, b.outputs, root); err != nil {
			return fmt.Errorf("sizes: %w", err)
		}
	}
	if !cfg.skip["boot"] {
		if err := boots(ctx, cfg, rep, b.outputs); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
	}
	if !cfg.skip["writers"] {
		if err := writers(ctx, cfg, rep, b.outputs, root); err != nil {
			return fmt.Errorf("writers: %w", err)
		}
	}
	if !cfg.skip["gobench"] {
		if err := goBenchmarks(ctx, cfg, rep); err != nil {
			return fmt.Errorf("go benchmarks: %w", err)
		}
	}
	logf("done in %s", time.Since(logStart).Round(time.Second))
	total := rep.add("total", "WHAT", "VALUE")
	total.row("load at end", loadAvg())
	total.row("bench wall time", seconds(time.Since(logStart)))
	fmt.Println()
	rep.print(os.Stdout)
	return nil
}

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
		}
	}
	return "?"
}

// loadAvg is the 1, 5 and 15 minute load averages: other work on the
// machine shows there.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// accel is what internal/qemu picks for the host's architecture, so the
// table names the accelerator the boots really ran under.
func accel() string {
	if qemu.KVMUsable() {
		return "KVM"
	}
	return "TCG, no usable KVM"
}

// seconds formats a duration as seconds with 2 decimals.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func percent(part, whole int64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(part)/float64(whole))
}
