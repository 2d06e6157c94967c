package imageread

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxGCEPrefix bounds how much of a GCE disk.raw is inflated to reach
// the end of its EFI system partition.
const maxGCEPrefix = 1 << 30

// countingReader counts what has been read through it, so the offset of a
// tar entry's data can be known without archive/tar telling it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// isOVA reports whether a tar's first entry is an OVF descriptor, as the
// OVF standard requires of an OVA.
func isOVA(r io.ReaderAt, size int64) bool {
	tr := tar.NewReader(io.NewSectionReader(r, 0, size))
	h, err := tr.Next()
	return err == nil && strings.HasSuffix(h.Name, ".ovf")
}

// ovaDisk returns the first .vmdk of an OVA, in place: an OVA is an
// uncompressed tar, so the entry's bytes are a section of the file.
func ovaDisk(r io.ReaderAt, size int64) (*io.SectionReader, string, error) {
	cr := &countingReader{r: io.NewSectionReader(r, 0, size)}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, "", errors.New("OVA: no .vmdk disk")
		}
		if err != nil {
			return nil, "", fmt.Errorf("OVA: %w", err)
		}
		if h.Typeflag == tar.TypeReg && strings.HasSuffix(h.Name, ".vmdk") {
			return io.NewSectionReader(r, cr.n, h.Size), h.Name, nil
		}
	}
}

// gceDisk inflates a GCE image (disk.raw in a gzipped tar) up to the end
// of its EFI system partition, which is all keel inspect needs, and
// returns that prefix with the disk's full size.
func gceDisk(r io.ReaderAt, size int64) (io.ReaderAt, int64, error) {
	zr, err := gzip.NewReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, 0, fmt.Errorf("gce: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil {
		return nil, 0, fmt.Errorf("gce: %w", err)
	}
	if h.Name != "disk.raw" {
		return nil, 0, fmt.Errorf("gce: first entry is %q, not disk.raw", h.Name)
	}
	buf := make([]byte, min(h.Size, 1<<20))
	if _, err := io.ReadFull(tr, buf); err != nil {
		return nil, 0, fmt.Errorf("gce: disk.raw: %w", err)
	}
	esp, err := bootPartition(bytes.NewReader(buf), h.Size)
	if err != nil {
		return nil, 0, fmt.Errorf("gce: disk.raw: %w", err)
	}
	end := esp.Start + esp.Size
	if end > maxGCEPrefix {
		return nil, 0, fmt.Errorf("gce: disk.raw: EFI system partition ends at %d bytes, past what keel reads", end)
	}
	if end > int64(len(buf)) {
		// Grown as the data inflates: the partition table's claim alone
		// must not cost a GiB of memory.
		rest, err := io.ReadAll(io.LimitReader(tr, end-int64(len(buf))))
		if err == nil && int64(len(rest)) < end-int64(len(buf)) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, 0, fmt.Errorf("gce: disk.raw: %w", err)
		}
		buf = append(buf, rest...)
	}
	return bytes.NewReader(buf), h.Size, nil
}
