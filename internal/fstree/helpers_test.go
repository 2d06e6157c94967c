package fstree

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"
)

// tarEntry is one member of a test archive; Body is the file content.
type tarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Link     string
	Body     string
	Uid, Gid int
	Xattrs   map[string]string
}

func reg(name, body string) tarEntry {
	return tarEntry{Name: name, Type: tar.TypeReg, Mode: 0o644, Body: body}
}
func dir(name string) tarEntry { return tarEntry{Name: name, Type: tar.TypeDir, Mode: 0o755} }
func symlink(name, to string) tarEntry {
	return tarEntry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Link: to}
}
func hardlink(name, to string) tarEntry {
	return tarEntry{Name: name, Type: tar.TypeLink, Mode: 0o644, Link: to}
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link,
			Uid: e.Uid, Gid: e.Gid, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.Type == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		for k, v := range e.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[xattrPrefix+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newTree(t testing.TB) *Tree {
	t.Helper()
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return New(s)
}

// paths lists a tree's entry paths in Entries order.
func paths(tr *Tree) []string {
	var out []string
	for _, e := range tr.Entries() {
		out = append(out, e.Path)
	}
	return out
}
