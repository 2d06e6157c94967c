package initramfs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keelos/keel/internal/fstree"
)

// benchTree is an in-memory Source shaped like a small root: a few large
// binaries and many small files, with content about as compressible as
// Go and C executables (half repeated fragments, half noise).
type benchTree struct {
	entries []*fstree.Entry
	blobs   map[string][]byte
	bytes   int64
}

func (t *benchTree) Entries() []*fstree.Entry { return t.entries }

func (t *benchTree) Open(e *fstree.Entry) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(t.blobs[e.Digest])), nil
}

// benchContent returns n bytes of deterministic, partly compressible data.
func benchContent(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	words := [][]byte{[]byte("\x48\x89\xe5\x48\x83\xec"), []byte("runtime."), []byte("\x00\x00\x00\x00"), []byte("github.com/keelos/keel/"), []byte("\xe8\x00\x00\x00\x00\xc3")}
	for len(b) < n {
		if r.IntN(2) == 0 {
			b = append(b, words[r.IntN(len(words))]...)
		} else {
			for range 8 {
				b = append(b, byte(r.Uint32()))
			}
		}
	}
	return b[:n]
}

func newBenchTree() *benchTree {
	r := rand.New(rand.NewPCG(1, 2))
	t := &benchTree{blobs: map[string][]byte{}}
	add := func(p string, size int) {
		data := benchContent(r, size)
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
		t.blobs[d] = data
		t.entries = append(t.entries, &fstree.Entry{Path: p, Mode: 0o755, Size: int64(size), Digest: d})
		t.bytes += int64(size)
	}
	for i := range 4 {
		t.entries = append(t.entries, &fstree.Entry{Path: fmt.Sprintf("d%d", i), Mode: fs.ModeDir | 0o755})
		add(fmt.Sprintf("d%d/big", i), 6<<20)
		for j := range 200 {
			add(fmt.Sprintf("d%d/small%03d", i, j), 512+r.IntN(16<<10))
		}
	}
	return t
}

func benchmarkWrite(b *testing.B, c Compression) {
	t := newBenchTree()
	var out int64
	iters := 0
	start := time.Now()
	for b.Loop() {
		iters++
		var n countingDiscard
		if err := WriteEpoch(&n, t, c, 0); err != nil {
			b.Fatal(err)
		}
		out = int64(n)
	}
	b.ReportMetric(float64(t.bytes)*float64(iters)/1e6/time.Since(start).Seconds(), "MB/s")
	b.ReportMetric(float64(out)/float64(t.bytes), "out/in")
}

type countingDiscard int64

func (c *countingDiscard) Write(p []byte) (int, error) {
	*c += countingDiscard(len(p))
	return len(p), nil
}

// BenchmarkWriteCPIO measures the newc writer alone (MB/s of file content).
func BenchmarkWriteCPIO(b *testing.B) { benchmarkWrite(b, None) }

// BenchmarkWriteZstd is the initramfs as keel writes it: newc + zstd.
func BenchmarkWriteZstd(b *testing.B) { benchmarkWrite(b, Zstd) }

// BenchmarkWriteGzip is the gzip alternative.
func BenchmarkWriteGzip(b *testing.B) { benchmarkWrite(b, Gzip) }
