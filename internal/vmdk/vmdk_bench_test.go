package vmdk

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkWriteStreamOptimized converts a 64 MiB raw disk whose 1 MiB
// extents cycle through incompressible bytes (already-compressed files),
// text, a short repeating pattern and zeros, and reports throughput over
// the raw size plus the output's size as a fraction of it.
func BenchmarkWriteStreamOptimized(b *testing.B) {
	const size = 64 << 20
	raw := filepath.Join(b.TempDir(), "disk.raw")
	f, err := os.Create(raw)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	words := strings.Fields("the quick build of a disk image writes each grain once and never seeks back")
	extent := make([]byte, 1<<20)
	for i, off := 0, int64(0); off < size; i, off = i+1, off+int64(len(extent)) {
		switch i % 4 {
		case 0:
			for j := range extent {
				extent[j] = byte(rng.Uint32())
			}
		case 1:
			var s strings.Builder
			for s.Len() < len(extent) {
				s.WriteString(words[rng.IntN(len(words))])
				s.WriteByte(' ')
			}
			copy(extent, s.String())
		case 2:
			for j := range extent {
				extent[j] = byte(j*31) ^ byte(j>>9) | 1
			}
		case 3:
			continue
		}
		if _, err := f.WriteAt(extent, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	var out countWriter
	b.SetBytes(size)
	for b.Loop() {
		out = 0
		if err := WriteStreamOptimized(&out, f, size, Options{CID: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out)/size, "out/in")
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countWriter)(nil)
