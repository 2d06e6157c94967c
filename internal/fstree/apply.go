package fstree

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// ApplyOptions tune ApplyTar and ExtractDir.
type ApplyOptions struct {
	// AllowDevices keeps device nodes and fifos; otherwise they are skipped.
	AllowDevices bool
	// Filter, when set, is asked about every cleaned path; false skips it.
	Filter func(path string) bool
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	xattrPrefix    = "SCHILY.xattr."
	maxLinkFollows = 255
)

// ApplyTar applies a tar stream (an OCI layer, a .deb data.tar) on top of
// the tree. Paths are resolved inside the tree the way securejoin does:
// symlinked parents are followed but can never lead out of the root, and
// absolute link targets mean the tree's root. Entries climbing out with
// ".." and hard links to missing files are refused. OCI whiteouts remove
// lower content. Directories may come after their children, and hard
// links before their targets (as in go-containerregistry's flattened
// streams).
func (t *Tree) ApplyTar(r io.Reader, opts ApplyOptions) error {
	t.gen++
	tr := tar.NewReader(r)
	// Hard links whose target has not been seen yet, by link path.
	pending := map[string]string{}
	var pendingOrder []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		p, err := cleanPath(hdr.Name)
		if err != nil {
			return fmt.Errorf("tar entry: %w", err)
		}
		if p == "" {
			continue // the root itself: implicit
		}
		if opts.Filter != nil && !opts.Filter(p) {
			continue
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if strings.HasPrefix(base, whiteoutPrefix) {
			parent, err := t.resolveDir(dir, false)
			if err != nil {
				return fmt.Errorf("whiteout %s: %w", p, err)
			}
			if parent == nil {
				continue // nothing below to hide
			}
			if base == whiteoutOpaque {
				t.pruneLower(parent)
			} else if c, ok := parent.children[strings.TrimPrefix(base, whiteoutPrefix)]; ok && c.gen != t.gen {
				if t.pruneLower(c) {
					delete(parent.children, strings.TrimPrefix(base, whiteoutPrefix))
				}
			}
			dropPending(pending, p)
			continue
		}

		e := Entry{
			Mode:     hdr.FileInfo().Mode() & (permBits | fs.ModeType),
			UID:      hdr.Uid,
			GID:      hdr.Gid,
			Linkname: hdr.Linkname,
			Devmajor: uint32(hdr.Devmajor),
			Devminor: uint32(hdr.Devminor),
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, xattrPrefix); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			e.Mode = e.Mode & permBits
			e.Linkname = ""
			if e.Digest, e.Size, err = t.store.Put(tr); err != nil {
				return fmt.Errorf("tar entry %s: %w", p, err)
			}
		case tar.TypeDir:
			e.Mode = fs.ModeDir | e.Mode&permBits
			e.Linkname = ""
		case tar.TypeSymlink:
			e.Mode = fs.ModeSymlink | e.Mode&permBits
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if !opts.AllowDevices {
				continue
			}
			e.Linkname = ""
		case tar.TypeLink:
			target, err := cleanPath(hdr.Linkname)
			if err != nil || target == "" {
				return fmt.Errorf("hard link %s to %q: %w", p, hdr.Linkname, ErrUnsafePath)
			}
			parent, err := t.resolveDir(dir, true)
			if err != nil {
				return fmt.Errorf("tar entry %s: %w", p, err)
			}
			tn, err := t.resolve(target)
			if err != nil {
				return fmt.Errorf("hard link %s: %w", p, err)
			}
			if tn == nil {
				// Resolved once the whole stream is read.
				lp := path.Join(parent.e.Path, base)
				if _, ok := pending[lp]; !ok {
					pendingOrder = append(pendingOrder, lp)
				}
				pending[lp] = target
				continue
			}
			if tn.children != nil {
				return fmt.Errorf("hard link %s to directory %s refused", p, target)
			}
			t.set(parent, base, path.Join(parent.e.Path, base), tn.e)
			dropPending(pending, path.Join(parent.e.Path, base))
			continue
		default:
			continue // other types (GNU volume headers, …) carry no file
		}
		parent, err := t.resolveDir(dir, true)
		if err != nil {
			return fmt.Errorf("tar entry %s: %w", p, err)
		}
		full := path.Join(parent.e.Path, base)
		t.set(parent, base, full, e)
		dropPending(pending, full)
	}
	for _, lp := range pendingOrder {
		target, ok := pending[lp]
		if !ok {
			continue
		}
		tn, err := t.resolve(target)
		if err != nil {
			return fmt.Errorf("hard link %s: %w", lp, err)
		}
		if tn == nil || tn.children != nil {
			return fmt.Errorf("hard link %s: target %s is not a file in the tree", lp, target)
		}
		dir, base := path.Split(lp)
		parent, err := t.resolveDir(strings.TrimSuffix(dir, "/"), true)
		if err != nil {
			return fmt.Errorf("hard link %s: %w", lp, err)
		}
		t.set(parent, base, lp, tn.e)
	}
	return nil
}

// dropPending forgets deferred hard links at or under p: a later entry
// there wins over them.
func dropPending(pending map[string]string, p string) {
	for lp := range pending {
		if lp == p || strings.HasPrefix(lp, p+"/") {
			delete(pending, lp)
		}
	}
}

// pruneLower removes the content under n that does not belong to the
// layer being applied, and reports whether n itself is lower content with
// nothing of the current layer left below it.
func (t *Tree) pruneLower(n *node) bool {
	for name, c := range n.children {
		if t.pruneLower(c) {
			delete(n.children, name)
		}
	}
	return n.gen != t.gen && len(n.children) == 0
}

// resolve follows the clean path p inside the tree, symlinks included
// (the last one too), and returns its node, or nil when it does not exist.
func (t *Tree) resolve(p string) (*node, error) {
	dir, base := path.Split(p)
	parent, err := t.resolveDir(strings.TrimSuffix(dir, "/"), false)
	if err != nil || parent == nil {
		return nil, err
	}
	n, ok := parent.children[base]
	if !ok {
		return nil, nil
	}
	return n, nil
}

// resolveDir walks the clean path p from the root, following symlinks
// inside the tree: ".." stops at the root and absolute targets restart
// from it, so no path can lead outside. With create, missing directories
// are made (0755, root); otherwise a missing one gives nil. A non
// directory where a directory is needed is an error.
func (t *Tree) resolveDir(p string, create bool) (*node, error) {
	n, missing, err := t.walkDir(p, create)
	if err != nil || len(missing) > 0 {
		return nil, err
	}
	return n, nil
}

// Resolve returns where p is in the tree: the symbolic links among its
// parent directories followed as ApplyTar follows them, the last
// component kept as it is, so the result names the entry p means without
// leaving the root. Below a directory that does not exist, the rest of p
// is kept as written. The result is clean, without a leading "/".
func (t *Tree) Resolve(p string) (string, error) {
	c, err := cleanPath(p)
	if err != nil || c == "" {
		return c, err
	}
	dir, base := path.Split(c)
	n, missing, err := t.walkDir(strings.TrimSuffix(dir, "/"), false)
	if err != nil {
		return "", err
	}
	return path.Join(append(append([]string{n.e.Path}, missing...), base)...), nil
}

// walkDir is resolveDir, also telling where a missing directory stopped
// it (without create): the deepest directory reached and the components
// left below it.
func (t *Tree) walkDir(p string, create bool) (*node, []string, error) {
	// stack holds the directories from the root to the current one.
	stack := []*node{t.root}
	todo := splitPath(p)
	follows := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		next, ok := cur.children[c]
		if !ok {
			if !create {
				return cur, append([]string{c}, todo...), nil
			}
			next = &node{e: Entry{Path: path.Join(cur.e.Path, c), Mode: fs.ModeDir | 0o755}, children: map[string]*node{}, gen: t.gen}
			cur.children[c] = next
		}
		switch {
		case next.children != nil:
			stack = append(stack, next)
		case next.e.Mode&fs.ModeSymlink != 0:
			follows++
			if follows > maxLinkFollows {
				return nil, nil, fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target := next.e.Linkname
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			todo = append(splitPath(target), todo...)
		default:
			return nil, nil, fmt.Errorf("%s: %s is not a directory", p, next.e.Path)
		}
	}
	return stack[len(stack)-1], nil, nil
}

func splitPath(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
