package fstree

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
)

// Entry is one node of a Tree: metadata only; a regular file's content
// lives in the tree's Store under Digest.
type Entry struct {
	Path     string      // clean, relative, no leading "/"; the root itself is implicit
	Mode     fs.FileMode // type bits, permissions, setuid/setgid/sticky
	UID, GID int
	Size     int64  // regular files
	Digest   string // regular files: "sha256:<hex>" of the content
	Linkname string // symlinks: the target as written
	Devmajor uint32 // device nodes
	Devminor uint32
	Xattrs   map[string]string // e.g. security.capability
}

// XattrKey is a canonical form of a set of extended attributes, for
// telling sets apart: writers share one xattr table entry per set and
// make hard links only of files whose sets are equal.
func XattrKey(x map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(x)) {
		fmt.Fprintf(&b, "%q=%q;", k, x[k])
	}
	return b.String()
}
