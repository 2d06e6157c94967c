// Package fstreetest holds what the tests of keel's file system writers
// (squashfs, erofs) share: a sample tree with every kind of entry and the
// awkward cases (hard links, holes, big directories, long names, high
// ids), and a check that a tree extracted by an outside tool is that tree.
package fstreetest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/fstree"
)

// Epoch is the mtime the tests write images with.
const Epoch = 1700000000

// Sample builds the sample tree in a store under t.TempDir().
func Sample(t testing.TB) *fstree.Tree {
	t.Helper()
	store, err := fstree.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := fstree.New(store)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(p string, mode fs.FileMode, uid, gid int, content string) {
		t.Helper()
		must(tr.AddFile(p, mode, uid, gid, strings.NewReader(content)))
	}
	add := func(e fstree.Entry) {
		t.Helper()
		must(tr.Add(e))
	}
	same := "same content\n"
	file("bin/a", 0o755, 0, 0, same)
	file("bin/b", 0o755, 0, 0, same)
	file("bin/c", 0o755, 0, 0, same)
	file("bin/other-mode", 0o644, 0, 0, same) // same content, other mode: not a link
	file("bin/suid", 0o755|fs.ModeSetuid, 0, 0, "x")
	file("empty", 0o600, 0, 0, "")
	// 2.5 blocks of 128 KiB with a whole zero block in the middle (a hole
	// in squashfs), and a tail.
	big := strings.Repeat("0123456789abcdef", 8192) + strings.Repeat("\x00", 128<<10) + strings.Repeat("xyz", 20000)
	file("bin/big", 0o644, 0, 0, big)
	file("bin/big-copy", 0o600, 0, 0, big) // shares data, not the inode
	// Exactly one 4 KiB block: no tail.
	file("bin/page", 0o644, 0, 0, strings.Repeat("p", 4096))
	add(fstree.Entry{Path: "sh", Mode: fs.ModeSymlink | 0o777, Linkname: "bin/a"})
	add(fstree.Entry{Path: "longlink", Mode: fs.ModeSymlink | 0o777, Linkname: "/" + strings.Repeat("d/", 700) + "end"})
	add(fstree.Entry{Path: "dev", Mode: fs.ModeDir | 0o755})
	add(fstree.Entry{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1})
	add(fstree.Entry{Path: "dev/sda1", Mode: fs.ModeDevice | 0o660, GID: 6, Devmajor: 8, Devminor: 1})
	add(fstree.Entry{Path: "dev/big-minor", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 300, Devminor: 70000})
	add(fstree.Entry{Path: "dev/fifo", Mode: fs.ModeNamedPipe | 0o644})
	add(fstree.Entry{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777})
	add(fstree.Entry{Path: "emptydir", Mode: fs.ModeDir | 0o700, UID: 5, GID: 5})
	file("etc/secret", 0o640, 1000, 100, "secret\n")
	// Extended attributes: a file capability (what ping needs), user
	// ones on a directory, and two files that differ only in them (one
	// inode each, not hard links).
	capability := "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	xattrFile := func(p string, x map[string]string) {
		t.Helper()
		digest, size, err := store.Put(strings.NewReader("xattr test\n"))
		must(err)
		add(fstree.Entry{Path: p, Mode: 0o755, Size: size, Digest: digest, Xattrs: x})
	}
	xattrFile("xattr/ping", map[string]string{"security.capability": capability})
	xattrFile("xattr/plain", nil)
	xattrFile("xattr/user", map[string]string{"user.keel.a": "1", "user.keel.long": strings.Repeat("v", 300), "trusted.keel": "t"})
	add(fstree.Entry{Path: "xattr/dir", Mode: fs.ModeDir | 0o755, Xattrs: map[string]string{"user.keel.dir": "d"}})
	add(fstree.Entry{Path: "xattr/link", Mode: fs.ModeSymlink | 0o777, Linkname: "ping", Xattrs: map[string]string{"security.keel": "s"}})
	file("etc/high-ids", 0o644, 70000, 80000, "ids above 16 bits\n")
	file("deep/a/b/c/d/e/f", 0o644, 0, 0, "deep\n")
	// Names sorting before "." and "..", and the longest a name can be.
	file("names/+plus", 0o644, 0, 0, "+")
	file("names/-dash", 0o644, 0, 0, "-")
	file("names/"+strings.Repeat("n", 255), 0o644, 0, 0, "long name")
	// A directory whose listing spans several metadata blocks and
	// directory blocks, with more than 256 entries.
	for i := range 700 {
		file(fmt.Sprintf("many/file-%04d-%s", i, strings.Repeat("x", i%40)), 0o644, i%3, 0, fmt.Sprintf("content %d\n", i%50))
	}
	for i := range 30 {
		add(fstree.Entry{Path: fmt.Sprintf("many/dir-%02d", i), Mode: fs.ModeDir | 0o755})
	}
	return tr
}

type linkKey struct {
	digest   string
	mode     fs.FileMode
	uid, gid int
	xattrs   string
}

// xattrs reads every extended attribute of p (not following a symlink).
func xattrs(t *testing.T, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Errorf("listxattr %s: %v", p, err)
		return nil
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Errorf("getxattr %s %s: %v", p, name, err)
			continue
		}
		out[name] = string(v[:m])
	}
	return out
}

// Lax relaxes Compare for extractors that lose what the image has.
type Lax struct {
	// HardLinks: the extractor writes each name as a file of its own
	// (fsck.erofs 1.5).
	HardLinks bool
	// Setuid: the extractor chowns after chmod, which clears setuid and
	// setgid (fsck.erofs 1.5).
	Setuid bool
	// Xattrs: the extractor does not restore extended attributes
	// (fsck.erofs 1.5).
	Xattrs bool
}

// Compare checks that dir, extracted from an image of tree written with
// epoch as every mtime, holds exactly the tree: every entry with its type,
// permissions, owner, content, link target or device number, and regular
// files with the same content and metadata as hard links of one inode.
func Compare(t *testing.T, tree *fstree.Tree, dir string, epoch int64, lax ...Lax) {
	t.Helper()
	var l Lax
	for _, x := range lax {
		l.HardLinks = l.HardLinks || x.HardLinks
		l.Setuid = l.Setuid || x.Setuid
		l.Xattrs = l.Xattrs || x.Xattrs
	}
	groups := map[linkKey][]string{}
	want := map[string]bool{}
	for _, e := range tree.Entries() {
		want[e.Path] = true
		p := filepath.Join(dir, e.Path)
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", e.Path, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode().Type() != e.Mode.Type() {
			t.Errorf("%s: type %v, want %v", e.Path, st.Mode().Type(), e.Mode.Type())
			continue
		}
		if e.Mode.Type() != fs.ModeSymlink {
			var bits fs.FileMode = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
			if l.Setuid {
				bits &^= fs.ModeSetuid | fs.ModeSetgid
			}
			if st.Mode()&bits != e.Mode&bits {
				t.Errorf("%s: mode %v, want %v", e.Path, st.Mode()&bits, e.Mode&bits)
			}
			if st.ModTime().Unix() != epoch {
				t.Errorf("%s: mtime %d, want %d", e.Path, st.ModTime().Unix(), epoch)
			}
		}
		if !l.Xattrs {
			if got := xattrs(t, p); !maps.Equal(got, e.Xattrs) && (len(got) > 0 || len(e.Xattrs) > 0) {
				t.Errorf("%s: xattrs %q, want %q", e.Path, got, e.Xattrs)
			}
		}
		if int(sys.Uid) != e.UID || int(sys.Gid) != e.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", e.Path, sys.Uid, sys.Gid, e.UID, e.GID)
		}
		switch e.Mode.Type() {
		case 0:
			f, err := os.Open(p)
			if err != nil {
				t.Error(err)
				continue
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				t.Error(err)
			}
			if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != e.Digest || n != e.Size {
				t.Errorf("%s: content %s (%d bytes), want %s (%d bytes)", e.Path, got, n, e.Digest, e.Size)
			}
			k := linkKey{e.Digest, e.Mode, e.UID, e.GID, fmt.Sprint(e.Xattrs)}
			groups[k] = append(groups[k], e.Path)
		case fs.ModeSymlink:
			if got, err := os.Readlink(p); err != nil || got != e.Linkname {
				t.Errorf("%s: link to %q (%v), want %q", e.Path, got, err, e.Linkname)
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			major := uint32((sys.Rdev>>8)&0xfff) | uint32(sys.Rdev>>32)&^0xfff
			minor := uint32(sys.Rdev&0xff) | uint32(sys.Rdev>>12)&^0xff
			if major != e.Devmajor || minor != e.Devminor {
				t.Errorf("%s: device %d,%d, want %d,%d", e.Path, major, minor, e.Devmajor, e.Devminor)
			}
		}
	}
	for _, paths := range groups {
		if l.HardLinks {
			break
		}
		var ino uint64
		for i, p := range paths {
			st, err := os.Stat(filepath.Join(dir, p))
			if err != nil {
				continue
			}
			sys := st.Sys().(*syscall.Stat_t)
			if int(sys.Nlink) != len(paths) {
				t.Errorf("%s: %d links, want %d (%v)", p, sys.Nlink, len(paths), paths)
			}
			if i == 0 {
				ino = sys.Ino
			} else if sys.Ino != ino {
				t.Errorf("%s and %s: different inodes, want one", paths[0], p)
			}
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && !want[filepath.ToSlash(rel)] {
			t.Errorf("%s: extracted but not in the tree", rel)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// Mount mounts the image file img read-only through a loop device with
// the running kernel's fstype driver and returns the mount point, which
// is unmounted when the test ends. It skips the test where that cannot
// be done (not root, no loop devices, no such file system in the kernel);
// a mount the kernel refuses otherwise fails it.
func Mount(t *testing.T, img, fstype string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
	_ = exec.Command("modprobe", fstype).Run()
	fss, _ := os.ReadFile("/proc/filesystems")
	if !strings.Contains(string(fss), "\t"+fstype+"\n") {
		t.Skipf("the running kernel has no %s", fstype)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", fstype, "-o", "loop,ro", img, dir).CombinedOutput(); err != nil {
		dmesg, _ := exec.Command("dmesg").Output()
		lines := strings.Split(strings.TrimSpace(string(dmesg)), "\n")
		t.Fatalf("mount -t %s %s: %v\n%s\nkernel log:\n%s", fstype, img, err, out, strings.Join(lines[max(0, len(lines)-5):], "\n"))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}
