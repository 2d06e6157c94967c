package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// benchPackages hold the *_bench_test.go benchmarks of keel's writers.
var benchPackages = []string{"./internal/initramfs", "./internal/fat", "./internal/iso9660", "./internal/qcow2"}

// goBenchmarks runs the Go benchmarks and copies their MB/s into the table.
func goBenchmarks(ctx context.Context, cfg *config, rep *report) error {
	logf("go benchmarks: %s", strings.Join(benchPackages, " "))
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchtime", "1s", "-count", "1"}, benchPackages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = cfg.repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 3000))
	}
	s := rep.add("Go benchmarks of the writers (synthetic input, `go test -bench . "+strings.Join(benchPackages, " ")+"`)",
		"BENCHMARK", "ITERATIONS", "TIME/OP", "MB/s", "OTHER")
	pkg := ""
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "pkg:" {
			pkg = f[1][strings.LastIndex(f[1], "/")+1:]
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := pkg + "." + strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		var ns, mbs string
		var other []string
		for i := 2; i+1 < len(f); i += 2 {
			switch f[i+1] {
			case "ns/op":
				var v float64
				fmt.Sscan(f[i], &v)
				ns = fmt.Sprintf("%.1f ms", v/1e6)
			case "MB/s":
				mbs = f[i]
			default:
				other = append(other, f[i]+" "+f[i+1])
			}
		}
		if len(other) == 0 {
			other = []string{"-"}
		}
		s.row(name, f[1], ns, mbs, strings.Join(other, ", "))
	}
	s.note("Inputs are generated in memory (initramfs: 4 × 6 MiB + 800 small files; fat: a 28 MiB UKI, 400 small")
	s.note("files; iso9660: a 56 MiB boot image, 2000 small files; qcow2: 256 MiB raw with 64 MiB of data);")
	s.note("MB/s counts file content (qcow2: the raw disk's size). out/in: compressed over input size.")
	return nil
}
