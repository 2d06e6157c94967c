package fat

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelos/keel/internal/fstree"
)

// benchmarkWrite writes files into a fresh volume file per iteration and
// reports MB/s of file content.
func benchmarkWrite(b *testing.B, files fstree.MemFiles) {
	var content int64
	for _, f := range files {
		content += int64(len(f.Data))
	}
	size := Size(files)
	out := filepath.Join(b.TempDir(), "fat.img")
	iters := 0
	start := time.Now()
	for b.Loop() {
		iters++
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		if err := Write(f, 0, size, files, Options{Label: "BENCH"}); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(content)*float64(iters)/1e6/time.Since(start).Seconds(), "MB/s")
}

// BenchmarkWriteESP is the ESP keel writes: one UKI-sized file.
func BenchmarkWriteESP(b *testing.B) {
	benchmarkWrite(b, fstree.MemFiles{{Path: "EFI/BOOT/BOOTX64.EFI", Data: benchPattern(28<<20, 3)}})
}

// BenchmarkWriteManyFiles is a tree of 400 small files in 8 directories.
func BenchmarkWriteManyFiles(b *testing.B) {
	var files fstree.MemFiles
	for i := range 400 {
		files = append(files, fstree.MemFile{Path: fmt.Sprintf("dir%d/a file with a long name %03d.bin", i%8, i), Data: benchPattern(4096+i*37, byte(i))})
	}
	benchmarkWrite(b, files)
}

// benchPattern is n bytes of deterministic data that neither repeats
// within a cluster nor is all zeros.
func benchPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed ^ byte(i>>11)
	}
	return b
}
