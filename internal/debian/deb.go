package debian

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// DataTar opens the .deb at debPath and returns its uncompressed data.tar
// stream (the files the package installs). Close releases the file.
func DataTar(debPath string) (io.ReadCloser, error) {
	return openMember(debPath, "data.tar")
}

// Control returns the fields of the package's control file (multi-line
// values as Paragraph keeps them).
func Control(debPath string) (map[string]string, error) {
	rc, err := openMember(debPath, "control.tar")
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: control.tar has no control file", debPath)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: control.tar: %w", debPath, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "control" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: control: %w", debPath, err)
		}
		fields := map[string]string{}
		err = ParseParagraphs(string(data), func(p Paragraph) error {
			if len(fields) == 0 {
				for _, f := range p {
					fields[f.Name] = f.Value
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: control: %w", debPath, err)
		}
		return fields, nil
	}
}

// openMember finds the ar member whose name starts with prefix ("data.tar",
// "control.tar") and returns it decompressed according to its extension.
func openMember(debPath, prefix string) (io.ReadCloser, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	name, member, err := findArMember(f, prefix)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	var r io.Reader
	closeDec := func() {}
	br := bufio.NewReaderSize(member, 1<<16)
	switch ext := strings.TrimPrefix(name, prefix); ext {
	case "":
		r = br
	case ".gz":
		var zr *gzip.Reader
		zr, err = gzip.NewReader(br)
		r = zr
	case ".xz":
		r, err = xz.NewReader(br)
	case ".zst":
		var zr *zstd.Decoder
		zr, err = zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err == nil {
			r, closeDec = zr, zr.Close
		}
	default:
		err = fmt.Errorf("unsupported compression %q", ext)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %s: %w", debPath, name, err)
	}
	return &memberReader{r: r, close: func() error { closeDec(); return f.Close() }, name: debPath + ": " + name}, nil
}

type memberReader struct {
	r     io.Reader
	close func() error
	name  string
}

func (m *memberReader) Read(b []byte) (int, error) {
	n, err := m.r.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", m.name, err)
	}
	return n, err
}

func (m *memberReader) Close() error { return m.close() }

const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
)

// findArMember walks the ar archive in f to the first member whose name
// starts with prefix, and returns its name and content.
func findArMember(f *os.File, prefix string) (string, io.Reader, error) {
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != arMagic {
		return "", nil, errors.New("not a .deb (ar) archive")
	}
	off := int64(len(arMagic))
	var hdr [arHeaderSize]byte
	for {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			if err == io.EOF {
				return "", nil, fmt.Errorf("no %s.* member", prefix)
			}
			return "", nil, fmt.Errorf("reading ar header: %w", err)
		}
		if !bytes.Equal(hdr[58:60], []byte("`\n")) {
			return "", nil, fmt.Errorf("bad ar header at offset %d", off)
		}
		name := strings.TrimSuffix(strings.TrimRight(string(hdr[0:16]), " "), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return "", nil, fmt.Errorf("bad ar member size at offset %d", off)
		}
		off += arHeaderSize
		if strings.HasPrefix(name, prefix) {
			return name, io.NewSectionReader(f, off, size), nil
		}
		off += size + size%2 // members are 2-byte aligned
	}
}
