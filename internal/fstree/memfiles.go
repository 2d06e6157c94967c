package fstree

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
)

// MemFile is a regular file held in memory.
type MemFile struct {
	Path string
	Data []byte
}

// MemFiles is a Source of regular files held in memory (mode 0644, owned
// by root), in the order given, their directories implied: the few files
// of a boot partition or of an ISO's boot directory.
type MemFiles []MemFile

// Entries lists the files.
func (m MemFiles) Entries() []*Entry {
	out := make([]*Entry, len(m))
	for i, f := range m {
		out[i] = &Entry{Path: f.Path, Mode: 0o644, Size: int64(len(f.Data))}
	}
	return out
}

// Open returns the content of the first file at e.Path.
func (m MemFiles) Open(e *Entry) (io.ReadCloser, error) {
	for _, f := range m {
		if f.Path == e.Path {
			return io.NopCloser(bytes.NewReader(f.Data)), nil
		}
	}
	return nil, fmt.Errorf("open %s: %w", e.Path, fs.ErrNotExist)
}
