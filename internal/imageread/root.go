package imageread

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/keelos/keel/internal/initramfs"
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

// scanCPIO reads a newc cpio stream (the format Linux unpacks into the
// initramfs). It streams instead of using a random-access reader such as
// u-root's pkg/cpio, so a compressed initramfs of hundreds of MiB never
// sits in memory; only the wanted files are kept.
func scanCPIO(r io.Reader, c *collector) error {
	cr := initramfs.NewReader(r)
	// Hard links: internal/initramfs stores the data with the last name of
	// a link set and size 0 with the others, so a wanted name that came
	// without data takes it from a later entry with the same inode.
	pending := map[uint32][]string{}
	for {
		h, err := cr.Next()
		if err == io.EOF {
			// A link set of empty files has no member with data.
			for _, names := range pending {
				for _, n := range names {
					c.files[n] = []byte{}
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		name := cleanName(h.Name)
		wanted := c.want[name]
		switch {
		case h.Mode.IsRegular() && (wanted || len(pending[h.Ino]) > 0) && (h.Size > 0 || h.Nlink <= 1):
			data, err := readLimited(cr, h.Size, name)
			if err != nil {
				return fmt.Errorf("cpio: %w", err)
			}
			if wanted {
				c.files[name] = data
			}
			for _, n := range pending[h.Ino] {
				c.files[n] = data
			}
			delete(pending, h.Ino)
		case h.Mode.IsRegular() && wanted:
			pending[h.Ino] = append(pending[h.Ino], name) // data comes later
		case h.Mode&fs.ModeSymlink != 0 && wanted:
			target, err := readLimited(cr, h.Size, name)
			if err != nil {
				return fmt.Errorf("cpio: %w", err)
			}
			c.links[name] = string(target)
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
