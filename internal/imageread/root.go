package imageread

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxFile bounds what ReadFiles holds in memory for one file.
const maxFile = 256 << 20

// rootKind is how the root file tree is stored.
type rootKind int

const (
	rootCPIO rootKind = iota // newc cpio, possibly compressed (an initramfs)
	rootTar
)

// cleanName turns an archive member name ("./etc/x", "/etc/x", "etc/x/")
// into the form ReadFiles uses: "etc/x".
func cleanName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// collector gathers the wanted files while an archive streams past.
type collector struct {
	want  map[string]bool
	files map[string][]byte
	links map[string]string // wanted symlinks: name → target
}

func newCollector(names []string) *collector {
	c := &collector{want: map[string]bool{}, files: map[string][]byte{}, links: map[string]string{}}
	for _, n := range names {
		c.want[cleanName(n)] = true
	}
	return c
}

func (c *collector) done() bool { return len(c.files)+len(c.links) == len(c.want) }

func readLimited(r io.Reader, size int64, name string) ([]byte, error) {
	if size > maxFile {
		return nil, fmt.Errorf("%s: %d bytes is more than inspect reads", name, size)
	}
	// Grown as bytes arrive, not made at the size the header claims: a
	// few bytes of hostile header must not cost maxFile of memory.
	buf, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(buf)) < size {
		return nil, fmt.Errorf("%s: %w", name, io.ErrUnexpectedEOF)
	}
	return buf, nil
}

// codecOf names the compression of an initramfs from its first bytes:
// the codecs keel can write (zstd, gzip) or none; ok is false for
// anything else.
func codecOf(magic []byte) (codec string, ok bool) {
	switch {
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", true
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return "gzip", true
	case bytes.HasPrefix(magic, []byte("070701")), bytes.HasPrefix(magic, []byte("070702")):
		return "none", true
	}
	return "", false
}

// decompress returns the plain cpio stream of an initramfs.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	codec, _ := codecOf(magic)
	switch codec {
	case "zstd":
		// One goroutine and little memory: the machine may be busy
		// booting images.
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return d, d.Close, nil
	case "gzip":
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return z, func() { z.Close() }, nil
	case "none":
		return br, func() {}, nil
	}
	return nil, nil, errors.New("not a zstd, gzip or newc cpio archive")
}

// scanCPIO reads a newc cpio stream (the format Linux unpacks into the
// initramfs). It streams instead of using a random-access reader such as
// u-root's pkg/cpio, so a compressed initramfs of hundreds of MiB never
// sits in memory; only the wanted files are kept.
func scanCPIO(r io.Reader, c *collector) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	skip := func(n int64) error {
		k, err := io.CopyN(io.Discard, br, n)
		off += k
		return err
	}
	pad := func() error { return skip((4 - off%4) % 4) }
	// Hard links: internal/initramfs stores the data with the last name of
	// a link set and size 0 with the others, so a wanted name that came
	// without data takes it from a later entry with the same inode.
	pending := map[uint64][]string{}
	var hdr [110]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF && off > 0 {
				return errors.New("cpio: no TRAILER!!! record")
			}
			return fmt.Errorf("cpio: read header at %d: %w", off, err)
		}
		off += int64(len(hdr))
		if m := string(hdr[:6]); m != "070701" && m != "070702" {
			return fmt.Errorf("cpio: bad magic %q at offset %d", m, off-110)
		}
		field := func(i int) (uint64, error) {
			return strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
		}
		var f [13]uint64
		for i := range f {
			v, err := field(i)
			if err != nil {
				return fmt.Errorf("cpio: bad header field at offset %d: %w", off-110, err)
			}
			f[i] = v
		}
		ino, mode, nlink, size, namesize := f[0], f[1], f[4], int64(f[6]), int64(f[11])
		if namesize == 0 || namesize > 4096 {
			return fmt.Errorf("cpio: bad name size %d at offset %d", namesize, off-110)
		}
		nameb := make([]byte, namesize)
		if _, err := io.ReadFull(br, nameb); err != nil {
			return fmt.Errorf("cpio: read name: %w", err)
		}
		off += namesize
		name := string(bytes.TrimRight(nameb, "\x00"))
		if err := pad(); err != nil {
			return fmt.Errorf("cpio: %w", err)
		}
		if name == "TRAILER!!!" {
			// A link set of empty files has no member with data.
			for _, names := range pending {
				for _, n := range names {
					c.files[n] = []byte{}
				}
			}
			return nil
		}
		name = cleanName(name)
		const sIFMT, sIFREG, sIFLNK = 0o170000, 0o100000, 0o120000
		wanted := c.want[name]
		switch {
		case mode&sIFMT == sIFREG && (wanted || len(pending[ino]) > 0) && (size > 0 || nlink <= 1):
			data, err := readLimited(br, size, name)
			if err != nil {
				return fmt.Errorf("cpio: %w", err)
			}
			off += size
			if wanted {
				c.files[name] = data
			}
			for _, n := range pending[ino] {
				c.files[n] = data
			}
			delete(pending, ino)
		case mode&sIFMT == sIFREG && wanted:
			pending[ino] = append(pending[ino], name) // data comes later
			if err := skip(size); err != nil {
				return fmt.Errorf("cpio: %w", err)
			}
		case mode&sIFMT == sIFLNK && wanted:
			target, err := readLimited(br, size, name)
			if err != nil {
				return fmt.Errorf("cpio: %w", err)
			}
			off += size
			c.links[name] = string(target)
		default:
			if err := skip(size); err != nil {
				return fmt.Errorf("cpio: %s: %w", name, err)
			}
		}
		if err := pad(); err != nil {
			return fmt.Errorf("cpio: %w", err)
		}
		if c.done() {
			return nil
		}
	}
}

// scanTar reads a tar stream of the root (keel's tar output).
func scanTar(r io.Reader, c *collector) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := cleanName(h.Name)
		if !c.want[name] {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := readLimited(tr, h.Size, name)
			if err != nil {
				return fmt.Errorf("tar: %w", err)
			}
			c.files[name] = data
		case tar.TypeSymlink:
			c.links[name] = h.Linkname
		case tar.TypeLink:
			// keel writes no hard links in tars; another tool might.
			return fmt.Errorf("tar: %s is a hard link to %s, which inspect does not follow", name, h.Linkname)
		default:
			return fmt.Errorf("tar: %s is not a regular file", name)
		}
		if c.done() {
			return nil
		}
	}
}
