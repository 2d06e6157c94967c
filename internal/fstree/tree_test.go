package fstree

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

func read(t *testing.T, tr *Tree, p string) string {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		t.Fatalf("%s: missing", p)
	}
	rc, err := tr.Open(e)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func apply(t *testing.T, tr *Tree, opts ApplyOptions, entries ...tarEntry) error {
	t.Helper()
	return tr.ApplyTar(bytes.NewReader(makeTar(t, entries...)), opts)
}

func TestApplyTarKeepsMetadata(t *testing.T) {
	tr := newTree(t)
	suid := tarEntry{Name: "./usr/bin/ping", Type: '0', Mode: 0o4755, Body: "elf", Uid: 0, Gid: 0,
		Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02"}}
	err := apply(t, tr, ApplyOptions{}, dir("./"), dir("./usr/"), suid, symlink("bin", "usr/bin"),
		tarEntry{Name: "home/u", Type: '5', Mode: 0o1777, Uid: 1000, Gid: 100})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tr.Get("usr/bin/ping")
	if e.Mode != fs.ModeSetuid|0o755 || e.Size != 3 || e.Xattrs["security.capability"] != "\x01\x00\x00\x02" {
		t.Errorf("ping: %+v", e)
	}
	if got := read(t, tr, "usr/bin/ping"); got != "elf" {
		t.Errorf("content %q", got)
	}
	if e, _ := tr.Get("bin"); e.Mode != fs.ModeSymlink|0o777 || e.Linkname != "usr/bin" {
		t.Errorf("bin: %+v", e)
	}
	if e, _ := tr.Get("home/u"); e.Mode != fs.ModeDir|fs.ModeSticky|0o777 || e.UID != 1000 || e.GID != 100 {
		t.Errorf("home/u: %+v", e)
	}
	if e, _ := tr.Get("home"); e.Mode != fs.ModeDir|0o755 {
		t.Errorf("implicit parent: %+v", e)
	}
	if want := []string{"bin", "home", "home/u", "usr", "usr/bin", "usr/bin/ping"}; !slices.Equal(paths(tr), want) {
		t.Errorf("entries %v, want %v", paths(tr), want)
	}
}

func TestApplyTarRefusesDotDotEscape(t *testing.T) {
	for _, name := range []string{"../../x", "a/../../x", "/../x"} {
		tr := newTree(t)
		err := apply(t, tr, ApplyOptions{}, reg(name, "evil"))
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%s: err %v, want ErrUnsafePath", name, err)
		}
		if len(tr.Entries()) != 0 {
			t.Errorf("%s: entries %v", name, paths(tr))
		}
	}
}

func TestApplyTarAbsolutePathIsInsideRoot(t *testing.T) {
	tr := newTree(t)
	if err := apply(t, tr, ApplyOptions{}, reg("/etc/x", "v")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, tr, "etc/x"); got != "v" {
		t.Errorf("etc/x = %q", got)
	}
}

func TestApplyTarSymlinkParentsResolveInsideTree(t *testing.T) {
	tr := newTree(t)
	err := apply(t, tr, ApplyOptions{},
		symlink("a", "/"), reg("a/etc/passwd", "root-of-tree"),
		symlink("b", "../../.."), reg("b/x", "x"),
		dir("usr/lib"), symlink("lib", "usr/lib"), reg("lib/libc.so", "c"),
		symlink("c", "d"), symlink("d", "/usr/../../lib/../../usr"), reg("c/y", "y"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"etc/passwd": "root-of-tree", "x": "x", "usr/lib/libc.so": "c", "usr/y": "y"} {
		if got := read(t, tr, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"a", "b", "lib", "c", "d"} {
		if e, ok := tr.Get(p); !ok || e.Mode.Type() != fs.ModeSymlink {
			t.Errorf("%s is no longer a symlink: %+v", p, e)
		}
	}
	// Symlink loops are an error, not a hang.
	err = apply(t, tr, ApplyOptions{}, symlink("loop1", "loop2"), symlink("loop2", "loop1"), reg("loop1/f", ""))
	if err == nil {
		t.Error("symlink loop: no error")
	}
}

// TestResolve checks that Resolve follows symlinked parents as ApplyTar
// does, keeps the last component, and keeps the part below a missing
// directory as written.
func TestResolve(t *testing.T) {
	tr := newTree(t)
	err := apply(t, tr, ApplyOptions{},
		dir("run"), dir("var"), symlink("var/run", "../run"), symlink("var/lock", "/run/lock"),
		symlink("up", "../../.."), symlink("run/last", "/etc"), reg("file", "x"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/var/run/nginx":     "run/nginx",
		"/var/lock/subsys/x": "run/lock/subsys/x", // /run/lock is missing: kept below /run
		"/up/etc/passwd":     "etc/passwd",
		"/run/last":          "run/last", // the last component is not followed
		"/var":               "var",
		"/":                  "",
	} {
		got, err := tr.Resolve(p)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	if got, err := tr.Resolve("/file/x"); err == nil {
		t.Errorf("Resolve through a regular file = %q, want an error", got)
	}
}

func TestApplyTarHardLinks(t *testing.T) {
	tr := newTree(t)
	// A link before its target, as in flattened streams, and one after.
	err := apply(t, tr, ApplyOptions{}, hardlink("early", "bin/sh"), reg("bin/sh", "shell"), hardlink("/bin/bash", "./bin/sh"))
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := tr.Get("bin/sh")
	for _, p := range []string{"early", "bin/bash"} {
		e, ok := tr.Get(p)
		if !ok || e.Digest != sh.Digest || e.Size != 5 || !e.Mode.IsRegular() {
			t.Errorf("%s: %+v", p, e)
		}
	}
	for _, target := range []string{"/etc/passwd", "../../etc/passwd", "missing"} {
		tr := newTree(t)
		if err := apply(t, tr, ApplyOptions{}, hardlink("l", target)); err == nil {
			t.Errorf("hard link to %s: no error", target)
		}
		if _, ok := tr.Get("l"); ok {
			t.Errorf("hard link to %s was added", target)
		}
	}
}

func TestApplyTarWhiteouts(t *testing.T) {
	tr := newTree(t)
	if err := apply(t, tr, ApplyOptions{}, reg("a/x", "1"), reg("a/y", "2"), reg("b/z", "3"), reg("b/sub/deep", "4"), reg("c/keep", "5")); err != nil {
		t.Fatal(err)
	}
	err := apply(t, tr, ApplyOptions{},
		reg("a/.wh.x", ""),
		reg("b/new", "6"), // before the opaque marker: same layer, kept
		reg("b/.wh..wh..opq", ""),
		reg("c/.wh.absent", ""),
		reg("gone/.wh.x", ""),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "a/y", "b", "b/new", "c", "c/keep"}
	if got := paths(tr); !slices.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	// A whiteout removes whole directories.
	if err := apply(t, tr, ApplyOptions{}, reg(".wh.c", "")); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Get("c"); ok {
		t.Error("c survived its whiteout")
	}
}

func TestApplyTarDirectoryAfterChildren(t *testing.T) {
	tr := newTree(t)
	err := apply(t, tr, ApplyOptions{}, reg("d/e/f", "f"), tarEntry{Name: "d/e/", Type: '5', Mode: 0o700, Uid: 7, Gid: 8}, dir("d/"))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tr.Get("d/e")
	if e.Mode != fs.ModeDir|0o700 || e.UID != 7 || e.GID != 8 {
		t.Errorf("d/e: %+v", e)
	}
	if read(t, tr, "d/e/f") != "f" {
		t.Error("child lost")
	}
}

func TestApplyTarDevicesAndFilter(t *testing.T) {
	entries := []tarEntry{{Name: "dev/null", Type: '3', Mode: 0o666}, {Name: "run/fifo", Type: '6', Mode: 0o600}, reg("usr/share/doc/x", "doc"), reg("bin/x", "x")}
	tr := newTree(t)
	if err := apply(t, tr, ApplyOptions{Filter: func(p string) bool { return !strings.HasPrefix(p, "usr/share/doc") }}, entries...); err != nil {
		t.Fatal(err)
	}
	if got, want := paths(tr), []string{"bin", "bin/x"}; !slices.Equal(got, want) {
		t.Errorf("default: %v, want %v", got, want)
	}
	tr = newTree(t)
	if err := apply(t, tr, ApplyOptions{AllowDevices: true}, entries...); err != nil {
		t.Fatal(err)
	}
	if e, ok := tr.Get("dev/null"); !ok || e.Mode.Type() != fs.ModeDevice|fs.ModeCharDevice {
		t.Errorf("dev/null: %+v", e)
	}
	if e, ok := tr.Get("run/fifo"); !ok || e.Mode.Type() != fs.ModeNamedPipe {
		t.Errorf("run/fifo: %+v", e)
	}
}

func TestEntriesOrderByComponents(t *testing.T) {
	tr := newTree(t)
	for _, p := range []string{"a-b", "a/c", "a.d", "a", "b/z/y"} {
		if err := tr.AddDir(p, 0o755, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a", "a/c", "a-b", "a.d", "b", "b/z", "b/z/y"}
	if got := paths(tr); !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func TestTreeEditing(t *testing.T) {
	tr := newTree(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.AddFile("etc/hosts", 0o644, 0, 0, strings.NewReader("127.0.0.1 localhost\n")))
	must(tr.AddSymlink("etc/mtab", "/proc/mounts", 0, 0))
	if err := tr.AddFile("etc/hosts/x", 0o644, 0, 0, strings.NewReader("")); err == nil {
		t.Error("file under a file: no error")
	}
	if err := tr.Add(Entry{Path: "../x", Mode: 0o644, Digest: "sha256:00"}); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("add ../x: %v", err)
	}
	other := newTreeSharing(tr)
	must(other.AddFile("etc/hosts", 0o600, 1, 1, strings.NewReader("new\n")))
	must(other.AddFile("usr/bin/tool", 0o755, 0, 0, strings.NewReader("tool")))
	must(tr.Merge(other))
	if read(t, tr, "etc/hosts") != "new\n" {
		t.Error("merge: upper file did not win")
	}
	if _, ok := tr.Get("etc/mtab"); !ok {
		t.Error("merge: lower entry lost")
	}
	must(tr.Graft("containers/x/rootfs", other))
	if read(t, tr, "containers/x/rootfs/usr/bin/tool") != "tool" {
		t.Error("graft: content missing")
	}
	if got := tr.Size(); got != int64(len("new\n")+len("tool"))*2 {
		t.Errorf("size %d", got)
	}
	tr.Remove("containers")
	tr.Filter(func(e *Entry) bool { return e.Path != "usr/bin" })
	if got, want := paths(tr), []string{"etc", "etc/hosts", "etc/mtab", "usr"}; !slices.Equal(got, want) {
		t.Errorf("after remove/filter: %v, want %v", got, want)
	}
}

func newTreeSharing(tr *Tree) *Tree { return New(tr.Store()) }

func TestWriteTarDeterministic(t *testing.T) {
	build := func(store *Store, reverse bool) *Tree {
		tr := New(store)
		steps := []func() error{
			func() error { return tr.AddFile("usr/bin/a", 0o755, 0, 0, strings.NewReader("aaa")) },
			func() error { return tr.AddFile("etc/conf", 0o600, 1000, 1000, strings.NewReader("conf")) },
			func() error { return tr.AddSymlink("bin", "usr/bin", 0, 0) },
			func() error {
				return tr.Add(Entry{Path: "usr/bin/cap", Mode: 0o755, Digest: mustPut(t, store, "cap"), Size: 3,
					Xattrs: map[string]string{"security.capability": "v", "user.b": "b", "user.a": "a"}})
			},
			func() error {
				return tr.Add(Entry{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1})
			},
			func() error {
				return tr.AddFile(strings.Repeat("long/", 40)+"name", 0o644, 0, 0, strings.NewReader(""))
			},
		}
		if reverse {
			slices.Reverse(steps)
		}
		for _, s := range steps {
			if err := s(); err != nil {
				t.Fatal(err)
			}
		}
		return tr
	}
	store, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	var outs [][]byte
	for _, reverse := range []bool{false, false, true} {
		var buf bytes.Buffer
		if err := build(store, reverse).WriteTar(&buf, mtime); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) || !bytes.Equal(outs[0], outs[2]) {
		t.Fatal("equal trees gave different tar bytes")
	}
	// The tar reads back into an equal tree.
	back := New(store)
	if err := back.ApplyTar(bytes.NewReader(outs[0]), ApplyOptions{AllowDevices: true}); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := back.WriteTar(&again, mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), outs[0]) {
		t.Error("tar → tree → tar changed the bytes")
	}
}

func mustPut(t *testing.T, s *Store, content string) string {
	d, _, err := s.Put(strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
