package fstree

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// WriteTar writes the tree as a tar stream; see the function WriteTar.
func (t *Tree) WriteTar(w io.Writer, mtime time.Time) error { return WriteTar(w, t, mtime) }

// WriteTar writes src as a tar stream that depends only on its content:
// entries in Entries order, every mtime set to mtime (whole seconds), no
// user or group names, xattrs as PAX records. Every regular file is
// written in full, never as a hard link.
func WriteTar(w io.Writer, src Source, mtime time.Time) error {
	tw := tar.NewWriter(w)
	mtime = mtime.UTC().Truncate(time.Second)
	for _, e := range src.Entries() {
		hdr := &tar.Header{
			Name:    e.Path,
			Mode:    int64(UnixPerm(e.Mode)),
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: mtime,
		}
		switch {
		case e.Mode.IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.Size
		case e.Mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.Linkname
		case e.Mode&fs.ModeCharDevice != 0:
			hdr.Typeflag = tar.TypeChar
		case e.Mode&fs.ModeDevice != 0:
			hdr.Typeflag = tar.TypeBlock
		case e.Mode&fs.ModeNamedPipe != 0:
			hdr.Typeflag = tar.TypeFifo
		default:
			return fmt.Errorf("write tar: %s: unsupported file type %v", e.Path, e.Mode.Type())
		}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = int64(e.Devmajor), int64(e.Devminor)
		}
		if len(e.Xattrs) > 0 {
			// archive/tar sorts PAX records, so map order does not leak.
			hdr.PAXRecords = make(map[string]string, len(e.Xattrs))
			for k, v := range e.Xattrs {
				hdr.PAXRecords[xattrPrefix+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar: %s: %w", e.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := copyContent(tw, src, e); err != nil {
				return fmt.Errorf("write tar: %s: %w", e.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return nil
}

func copyContent(w io.Writer, src Source, e *Entry) error {
	rc, err := src.Open(e)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("content %s holds %d bytes, the entry says %d", e.Digest, n, e.Size)
	}
	return nil
}

// PermMode is the inverse of UnixPerm: the permission bits and setuid,
// setgid and sticky of a Unix mode word as an fs.FileMode.
func PermMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// UnixPerm is the Unix permission word of a mode: the permission bits
// and setuid (04000), setgid (02000) and sticky (01000), which Go keeps
// elsewhere in fs.FileMode. Archive and file system formats store it.
func UnixPerm(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}
