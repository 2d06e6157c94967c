package vmdk

import (
	"bytes"
	"io"
	"testing"
)

// fuzzDisk is a raw disk of n bytes with data in its first grain, across
// the second grain's start and at its end.
func fuzzDisk(n int) []byte {
	b := make([]byte, n)
	for i, off := range []int{0, 64<<10 - 50, n - 300} {
		if off >= 0 && off+300 <= n {
			copy(b[off:], bytes.Repeat([]byte{byte(i + 1), byte(off)}, 150))
		}
	}
	return b
}

func writeStream(t testing.TB, disk []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := WriteStreamOptimized(&out, bytes.NewReader(disk), int64(len(disk)), Options{CID: 1}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// FuzzOpen checks that no file makes Open or ReadAt panic, or read more
// or less than io.ReaderAt allows.
func FuzzOpen(f *testing.F) {
	f.Add(writeStream(f, fuzzDisk(200<<10+1000)))
	f.Add(writeStream(f, fuzzDisk(512)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		buf := make([]byte, 64<<10+333)
		for _, off := range []int64{0, d.Size() / 2, d.Size() - 100, d.Size()} {
			if off < 0 {
				continue
			}
			n, err := d.ReadAt(buf, off)
			if n < 0 || n > len(buf) || (n < len(buf) && err == nil) {
				t.Fatalf("ReadAt(%d bytes at %d) of a %d-byte disk = %d, %v", len(buf), off, d.Size(), n, err)
			}
		}
	})
}

// FuzzRoundTrip checks that what WriteStreamOptimized writes reads back
// as the disk it was given, padded to whole sectors.
func FuzzRoundTrip(f *testing.F) {
	f.Add(fuzzDisk(200<<10 + 1000))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, disk []byte) {
		if len(disk) == 0 {
			return
		}
		img := writeStream(t, disk)
		d, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatal(err)
		}
		want := append(bytes.Clone(disk), make([]byte, ceilDiv(int64(len(disk)), sectorSize)*sectorSize-int64(len(disk)))...)
		got, err := io.ReadAll(io.NewSectionReader(d, 0, d.Size()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes read back, want %d, or they differ", len(got), len(want))
		}
	})
}
