package qcow2

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWrite converts a 256 MiB raw disk holding 64 MiB of data in
// scattered 1 MiB extents (the rest sparse zeros) and reports MB/s of the
// raw disk's size, as `qemu-img convert` is usually quoted.
func BenchmarkWrite(b *testing.B) {
	const size = 256 << 20
	raw := filepath.Join(b.TempDir(), "disk.raw")
	f, err := os.Create(raw)
	if err != nil {
		b.Fatal(err)
	}
	extent := make([]byte, 1<<20)
	for i := range extent {
		extent[i] = byte(i*31) ^ byte(i>>9) | 1
	}
	for off := int64(0); off < size; off += 4 << 20 {
		if _, err := f.WriteAt(extent, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	iters := 0
	start := time.Now()
	for b.Loop() {
		iters++
		if err := Write(io.Discard, f, size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(iters)/1e6/time.Since(start).Seconds(), "MB/s")
}
