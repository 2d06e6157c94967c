package iso9660

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/keelos/keel/internal/fstree"
)

// benchmarkWrite writes an image to io.Discard and reports MB/s of file
// content.
func benchmarkWrite(b *testing.B, o Options) {
	var content int64
	for _, e := range o.Files.Entries() {
		content += e.Size
	}
	iters := 0
	start := time.Now()
	for b.Loop() {
		iters++
		if err := Write(io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(content)*float64(iters)/1e6/time.Since(start).Seconds(), "MB/s")
}

// BenchmarkWriteEFIBoot is the ISO keel writes: one FAT boot image as the
// El Torito EFI entry.
func BenchmarkWriteEFIBoot(b *testing.B) {
	benchmarkWrite(b, Options{
		VolumeID:     "BENCH",
		Files:        fstree.MemFiles{{Path: "EFI/BOOT/EFIBOOT.IMG", Data: benchPattern(56<<20, 5)}},
		EFIBootImage: "EFI/BOOT/EFIBOOT.IMG",
	})
}

// BenchmarkWriteManyFiles is a tree of 2000 small files in 20 directories.
func BenchmarkWriteManyFiles(b *testing.B) {
	var files fstree.MemFiles
	for i := range 2000 {
		files = append(files, fstree.MemFile{Path: fmt.Sprintf("DIR%02d/FILE%04d.BIN", i%20, i), Data: benchPattern(2048+i*13, byte(i))})
	}
	benchmarkWrite(b, Options{VolumeID: "BENCH", Files: files})
}

// benchPattern is n bytes of deterministic data.
func benchPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed ^ byte(i>>11)
	}
	return b
}
