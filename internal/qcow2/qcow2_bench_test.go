package qcow2

import (
	"io"
	"testing"
	"time"

	"github.com/keelos/keel/internal/tooltest"
)

// BenchmarkWrite converts a 256 MiB raw disk holding 64 MiB of data in
// scattered 1 MiB extents (the rest sparse zeros) and reports MB/s of the
// raw disk's size, as `qemu-img convert` is usually quoted.
func BenchmarkWrite(b *testing.B) {
	const size = 256 << 20
	f := tooltest.SparseRaw(b, b.TempDir(), size, 4<<20)
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
