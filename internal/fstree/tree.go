package fstree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
)

// Tree is a file tree held in memory: metadata in nodes, file contents in
// a Store. It never touches the host filesystem except through the Store.
type Tree struct {
	store *Store
	root  *node
	// gen numbers the layer being applied, so whiteouts can tell content
	// of the current layer (kept) from lower content (removed).
	gen int
}

type node struct {
	e        Entry
	children map[string]*node // directories only
	gen      int
}

// New returns an empty tree whose file contents live in store.
func New(store *Store) *Tree {
	return &Tree{store: store, root: &node{e: Entry{Mode: fs.ModeDir | 0o755}, children: map[string]*node{}}}
}

// Source is a tree to write out: every image writer (initramfs, tar,
// squashfs, erofs, FAT, ISO 9660) takes its files through it. *Tree
// satisfies it, and so do a filtered view of one and MemFiles.
type Source interface {
	// Entries lists the tree, parents before children.
	Entries() []*Entry
	// Open returns a regular file's content.
	Open(e *Entry) (io.ReadCloser, error)
}

// Store is where the tree's file contents live.
func (t *Tree) Store() *Store { return t.store }

// ErrUnsafePath is returned for paths that would lead outside the root.
var ErrUnsafePath = errors.New("path leads outside the root")

// cleanPath turns an archive or caller path into the tree's form: no
// leading "/" or "./", cleaned; "" is the root. A ".." that climbs above
// the root is refused rather than clamped, as it only occurs in hostile
// or broken archives.
func cleanPath(p string) (string, error) {
	// No file name holds a NUL, and every archive format ends names with
	// one: a NUL would cut the name short in the image.
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%q: a path with a NUL byte", p)
	}
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "", nil
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q: %w", p, ErrUnsafePath)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

func validType(m fs.FileMode) bool {
	switch m.Type() {
	case 0, fs.ModeDir, fs.ModeSymlink, fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice, fs.ModeNamedPipe:
		return true
	}
	return false
}

// lookup finds the node at a clean path without following symlinks.
func (t *Tree) lookup(p string) (*node, bool) {
	n := t.root
	if p == "" {
		return n, true
	}
	for _, c := range strings.Split(p, "/") {
		if n.children == nil {
			return nil, false
		}
		next, ok := n.children[c]
		if !ok {
			return nil, false
		}
		n = next
	}
	return n, true
}

// Get returns the entry at path (symlinks are not followed).
func (t *Tree) Get(p string) (*Entry, bool) {
	c, err := cleanPath(p)
	if err != nil || c == "" {
		return nil, false
	}
	n, ok := t.lookup(c)
	if !ok {
		return nil, false
	}
	return &n.e, true
}

// parentDir returns the directory node that holds the clean path p,
// creating missing directories (0755, root-owned). An existing non
// directory on the way is an error: symlinks are not followed here.
func (t *Tree) parentDir(p string) (*node, string, error) {
	dir, base := path.Split(p)
	n := t.root
	cur := ""
	if dir != "" {
		for _, c := range strings.Split(strings.TrimSuffix(dir, "/"), "/") {
			cur = path.Join(cur, c)
			next, ok := n.children[c]
			if !ok {
				next = &node{e: Entry{Path: cur, Mode: fs.ModeDir | 0o755}, children: map[string]*node{}, gen: t.gen}
				n.children[c] = next
			} else if next.children == nil {
				return nil, "", fmt.Errorf("%s: parent %s is not a directory", p, cur)
			}
			n = next
		}
	}
	return n, base, nil
}

// Add places e in the tree, replacing what was at its path. A directory
// replacing a directory keeps the children; anything else replaces the
// whole subtree. Missing parents are created as 0755 root directories.
func (t *Tree) Add(e Entry) error {
	p, err := cleanPath(e.Path)
	if err != nil {
		return err
	}
	if p == "" {
		return fmt.Errorf("add: empty path (the root is implicit)")
	}
	if !validType(e.Mode) {
		return fmt.Errorf("add %s: unsupported file type %v", p, e.Mode.Type())
	}
	if e.Mode.IsRegular() && e.Digest == "" {
		return fmt.Errorf("add %s: regular file without a digest", p)
	}
	parent, base, err := t.parentDir(p)
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	t.set(parent, base, p, e)
	return nil
}

// set stores a copy of e as parent's child base (full path p).
func (t *Tree) set(parent *node, base, p string, e Entry) {
	e.Path = p
	if e.Xattrs != nil {
		e.Xattrs = maps.Clone(e.Xattrs)
	}
	if !e.Mode.IsRegular() {
		e.Digest, e.Size = "", 0
	}
	old := parent.children[base]
	n := &node{e: e, gen: t.gen}
	if e.Mode.IsDir() {
		n.children = map[string]*node{}
		if old != nil && old.children != nil {
			n.children = old.children
		}
	}
	parent.children[base] = n
}

// AddFile stores content and adds a regular file for it.
func (t *Tree) AddFile(p string, mode fs.FileMode, uid, gid int, content io.Reader) error {
	digest, size, err := t.store.Put(content)
	if err != nil {
		return fmt.Errorf("add %s: %w", p, err)
	}
	return t.Add(Entry{Path: p, Mode: mode & permBits, UID: uid, GID: gid, Size: size, Digest: digest})
}

// AddDir adds a directory (keeping its children if it exists).
func (t *Tree) AddDir(p string, mode fs.FileMode, uid, gid int) error {
	return t.Add(Entry{Path: p, Mode: fs.ModeDir | mode&permBits, UID: uid, GID: gid})
}

// AddSymlink adds a symlink to target (kept as written).
func (t *Tree) AddSymlink(p, target string, uid, gid int) error {
	return t.Add(Entry{Path: p, Mode: fs.ModeSymlink | 0o777, UID: uid, GID: gid, Linkname: target})
}

const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Remove deletes path and everything under it; a missing path is no error.
func (t *Tree) Remove(p string) {
	c, err := cleanPath(p)
	if err != nil || c == "" {
		return
	}
	dir, base := path.Split(c)
	parent, ok := t.lookup(strings.TrimSuffix(dir, "/"))
	if !ok || parent.children == nil {
		return
	}
	delete(parent.children, base)
}

// Entries lists every entry, parents before children, ordered by path
// components (so "a/b" sorts right after "a", before "a-b").
func (t *Tree) Entries() []*Entry {
	var out []*Entry
	t.walk(t.root, func(n *node) bool {
		out = append(out, &n.e)
		return true
	})
	return out
}

// walk visits n's descendants in Entries order; visit returning false
// skips a node's children.
func (t *Tree) walk(n *node, visit func(*node) bool) {
	for _, name := range slices.Sorted(maps.Keys(n.children)) {
		c := n.children[name]
		if visit(c) && c.children != nil {
			t.walk(c, visit)
		}
	}
}

// Open returns the content of a regular file entry.
func (t *Tree) Open(e *Entry) (io.ReadCloser, error) {
	if !e.Mode.IsRegular() {
		return nil, fmt.Errorf("open %s: not a regular file", e.Path)
	}
	return t.store.Open(e.Digest)
}

// Graft copies every entry of other under prefix ("" is the root). The
// trees must share a Store, as contents are not copied.
func (t *Tree) Graft(prefix string, other *Tree) error {
	pre, err := cleanPath(prefix)
	if err != nil {
		return err
	}
	if other.store != nil && t.store != nil && other.store.dir != t.store.dir {
		return fmt.Errorf("graft: trees use different content stores")
	}
	if pre != "" {
		if n, ok := t.lookup(pre); !ok || n.children == nil {
			if err := t.Add(Entry{Path: pre, Mode: fs.ModeDir | 0o755}); err != nil {
				return fmt.Errorf("graft: %w", err)
			}
		}
	}
	for _, e := range other.Entries() {
		c := *e
		c.Path = path.Join(pre, e.Path)
		if err := t.Add(c); err != nil {
			return fmt.Errorf("graft: %w", err)
		}
	}
	return nil
}

// Merge lays other over t, as a layer without whiteouts would be:
// other's entries replace t's, directories merge.
func (t *Tree) Merge(other *Tree) error {
	return t.Graft("", other)
}

// Size is the sum of the sizes of all regular files.
func (t *Tree) Size() int64 {
	var size int64
	t.walk(t.root, func(n *node) bool {
		size += n.e.Size
		return true
	})
	return size
}

// Filter removes every entry for which keep returns false, with all its
// descendants.
func (t *Tree) Filter(keep func(*Entry) bool) {
	var filter func(n *node)
	filter = func(n *node) {
		for _, name := range slices.Sorted(maps.Keys(n.children)) {
			c := n.children[name]
			if !keep(&c.e) {
				delete(n.children, name)
				continue
			}
			if c.children != nil {
				filter(c)
			}
		}
	}
	filter(t.root)
}
