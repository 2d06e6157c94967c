package vhd

import (
	"io"
	"testing"

	"github.com/keelos/keel/internal/tooltest"
)

// BenchmarkWrite converts a 64 MiB raw disk holding 16 MiB of data in
// scattered 1 MiB extents (the rest sparse zeros) to each format. SetBytes
// is the raw disk's size, so MB/s compares with how `qemu-img convert` is
// usually quoted.
func BenchmarkWrite(b *testing.B) {
	const size = 64 << 20
	f := tooltest.SparseRaw(b, b.TempDir(), size, 4<<20)
	for _, c := range []struct {
		name  string
		write writeFunc
	}{{"fixed", WriteFixed}, {"dynamic", WriteDynamic}, {"vhdx", WriteVHDX}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if err := c.write(io.Discard, f, size, testOpts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
