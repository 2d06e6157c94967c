package boot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMovePreservesTreeAndEmptiesSource(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc/keel"), 0o750))
	must(os.WriteFile(filepath.Join(src, "etc/keel/modules"), []byte("a\n"), 0o640))
	must(os.WriteFile(filepath.Join(src, "init"), []byte("binary"), 0o755))
	must(unix.Chmod(filepath.Join(src, "init"), 0o4755))
	must(os.Link(filepath.Join(src, "init"), filepath.Join(src, "etc/init-link")))
	must(os.Symlink("../init", filepath.Join(src, "etc/sym")))
	must(os.Lchown(filepath.Join(src, "etc/keel/modules"), 12, 34))
	must(unix.Mknod(filepath.Join(src, "console"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1))))
	xattr := unix.Lsetxattr(filepath.Join(src, "init"), "user.keel", []byte("v"), 0) == nil

	if err := Move(src, dst); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(src)
	if len(left) != 0 {
		t.Errorf("source still holds %d entries", len(left))
	}
	var a, b unix.Stat_t
	must(unix.Stat(filepath.Join(dst, "init"), &a))
	must(unix.Stat(filepath.Join(dst, "etc/init-link"), &b))
	if a.Ino != b.Ino || a.Mode&0o7777 != 0o4755 {
		t.Errorf("hard link lost (inodes %d %d) or mode %o", a.Ino, b.Ino, a.Mode&0o7777)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "etc/sym")); l != "../init" {
		t.Errorf("symlink = %q", l)
	}
	var m unix.Stat_t
	must(unix.Stat(filepath.Join(dst, "etc/keel/modules"), &m))
	if m.Uid != 12 || m.Gid != 34 || m.Mode&0o777 != 0o640 {
		t.Errorf("modules owner %d:%d mode %o", m.Uid, m.Gid, m.Mode&0o777)
	}
	var d unix.Stat_t
	must(unix.Stat(filepath.Join(dst, "etc/keel"), &d))
	if d.Mode&0o777 != 0o750 {
		t.Errorf("dir mode %o", d.Mode&0o777)
	}
	var c unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "console"), &c))
	if c.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(c.Rdev) != 5 || unix.Minor(c.Rdev) != 1 {
		t.Errorf("console node mode %o rdev %d", c.Mode, c.Rdev)
	}
	if xattr {
		v := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dst, "init"), "user.keel", v)
		if err != nil || string(v[:n]) != "v" {
			t.Errorf("xattr lost: %v %q", err, v[:n])
		}
	} else {
		t.Log("this filesystem takes no user xattrs: xattr copy not exercised")
	}
}

func TestHostnameFromFileElseMAC(t *testing.T) {
	f := filepath.Join(t.TempDir(), "hostname")
	os.WriteFile(f, []byte("box\n"), 0o644)
	if h := Hostname(f); h != "box" {
		t.Errorf("hostname = %q", h)
	}
	h := Hostname(filepath.Join(t.TempDir(), "missing"))
	if h != "keel" && (!strings.HasPrefix(h, "keel-") || len(h) != len("keel-")+6) {
		t.Errorf("derived hostname = %q, want keel-XXXXXX", h)
	}
}

func TestCmdlineFlag(t *testing.T) {
	f := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(f, []byte("console=ttyS0 keel.console_log=1 quiet\n"), 0o644)
	if !CmdlineFlag(f, "keel.console_log") || CmdlineFlag(f, "keel.debug") {
		t.Error("flag parsing wrong")
	}
}

func TestLoadModulesReportsFailuresAndGoesOn(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "modules")
	os.WriteFile(filepath.Join(dir, "bad.ko.txt"), nil, 0o644)
	os.WriteFile(list, []byte("# comment\n"+filepath.Join(dir, "missing.ko")+"\n"+filepath.Join(dir, "bad.ko.txt")+"\n"), 0o644)
	n, errs := LoadModules(list)
	if n != 0 || len(errs) != 2 {
		t.Errorf("loaded %d, errors %v; want 0 and 2", n, errs)
	}
	if n, errs := LoadModules(filepath.Join(dir, "none")); n != 0 || errs != nil {
		t.Errorf("missing list: %d %v", n, errs)
	}
}

func TestMilestoneAndUnescape(t *testing.T) {
	var b bytes.Buffer
	Milestone(&b, "init")
	if !strings.HasPrefix(b.String(), "keel: milestone init ") || !strings.HasSuffix(b.String(), "\n") {
		t.Errorf("milestone line %q", b.String())
	}
	if u := unescapeMount(`/mnt/a\040b`); u != "/mnt/a b" {
		t.Errorf("unescape = %q", u)
	}
}
