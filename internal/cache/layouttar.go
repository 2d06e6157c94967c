package cache

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// UntarLayout unpacks the regular files and directories of an OCI archive
// into dir. An image layout holds nothing else, so every other entry type
// and every name that would leave dir is refused.
func UntarLayout(p, dir string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// A file's bytes are in the archive: entries that claim more, as a
	// sparse file does (archive/tar expands its holes), would write
	// without bound.
	left := st.Size()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		rel := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if rel == "." {
			continue
		}
		if !fs.ValidPath(rel) {
			return fmt.Errorf("%s: entry %q leaves the archive", p, h.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if h.Size > left {
				return fmt.Errorf("%s: entry %q of %d bytes is larger than what the archive holds (a sparse file?)", p, h.Name, h.Size)
			}
			left -= h.Size
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: entry %q is not a file or directory", p, h.Name)
		}
	}
}
