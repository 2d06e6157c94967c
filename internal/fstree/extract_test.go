package fstree

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// extractModes runs a test with openat2 and with the hand-made walk used
// on kernels without it.
var extractModes = []struct {
	name   string
	manual bool
}{{"openat2", false}, {"manual", true}}

// outside lists what exists in base apart from base/root and its content.
func outside(t testing.TB, base string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if rel == "root" && d.IsDir() {
			return filepath.SkipDir
		}
		if rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExtractDirAdversarial(t *testing.T) {
	probe := "keel-fstree-escape-probe-" + strings.Repeat("x", 8)
	cases := []struct {
		name    string
		entries func(base string) []tarEntry
		inside  []string // paths that must exist inside root
		wantErr bool
	}{
		{"dotdot", func(string) []tarEntry { return []tarEntry{reg("../../x", "evil")} }, nil, true},
		{"dotdot-mid", func(string) []tarEntry { return []tarEntry{reg("a/../../x", "evil")} }, nil, true},
		{"absolute", func(string) []tarEntry { return []tarEntry{reg("/tmp/"+probe, "v")} }, []string{"tmp/" + probe}, false},
		{"symlink-to-root", func(string) []tarEntry {
			return []tarEntry{symlink("a", "/"), reg("a/tmp/"+probe, "evil")}
		}, []string{"tmp/" + probe}, false},
		{"symlink-to-base", func(base string) []tarEntry {
			return []tarEntry{symlink("a", base), reg("a/escaped", "evil")}
		}, []string{"@base/escaped"}, false},
		{"symlink-dotdot", func(string) []tarEntry {
			return []tarEntry{symlink("a", "../../.."), reg("a/escaped", "evil")}
		}, []string{"escaped"}, false},
		{"symlink-chain", func(base string) []tarEntry {
			return []tarEntry{symlink("a", "b"), symlink("b", "c/../../.."), dir("c"), symlink("d", "a/.."+base), reg("d/escaped", "evil")}
		}, nil, false},
		{"symlink-final", func(base string) []tarEntry {
			return []tarEntry{symlink("f", filepath.Join(base, "outside-file")), reg("f", "replaces the link")}
		}, []string{"f"}, false},
		{"hardlink-absolute", func(string) []tarEntry { return []tarEntry{hardlink("l", "/etc/passwd")} }, nil, true},
		{"hardlink-dotdot", func(string) []tarEntry { return []tarEntry{hardlink("l", "../../etc/passwd")} }, nil, true},
		{"hardlink-via-symlink", func(base string) []tarEntry {
			return []tarEntry{symlink("s", base), hardlink("l", "s/root/../../outside")}
		}, nil, true},
		{"dir-after-children", func(string) []tarEntry {
			return []tarEntry{reg("d/e/f", "f"), {Name: "d/e", Type: '5', Mode: 0o555}, dir("d")}
		}, []string{"d/e/f"}, false},
	}
	for _, m := range extractModes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				base := t.TempDir()
				root := filepath.Join(base, "root")
				err := extractDir(root, bytes.NewReader(makeTar(t, c.entries(base)...)), ApplyOptions{}, m.manual)
				if (err != nil) != c.wantErr {
					t.Errorf("err = %v, want error %v", err, c.wantErr)
				}
				if got := outside(t, base); len(got) > 0 {
					t.Errorf("written outside root: %v", got)
				}
				if _, err := os.Lstat("/tmp/" + probe); err == nil {
					os.Remove("/tmp/" + probe)
					t.Errorf("escaped to /tmp/%s", probe)
				}
				for _, p := range c.inside {
					p = strings.ReplaceAll(p, "@base", base)
					if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
						t.Errorf("%s missing inside root: %v", p, err)
					}
				}
			})
		}
	}
}

func TestExtractDirContentAndWhiteouts(t *testing.T) {
	for _, m := range extractModes {
		t.Run(m.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			lower := makeTar(t, reg("a/x", "1"), reg("a/y", "2"), reg("b/z", "3"), reg("b/sub/deep", "4"),
				tarEntry{Name: "bin/tool", Type: '0', Mode: 0o4750, Body: "tool"}, symlink("sbin", "bin"), hardlink("bin/tool2", "bin/tool"))
			if err := extractDir(root, bytes.NewReader(lower), ApplyOptions{}, m.manual); err != nil {
				t.Fatal(err)
			}
			upper := makeTar(t, reg("a/.wh.x", ""), reg("b/new", "6"), reg("b/.wh..wh..opq", ""), reg("sbin/.wh.tool2", ""))
			if err := extractDir(root, bytes.NewReader(upper), ApplyOptions{}, m.manual); err != nil {
				t.Fatal(err)
			}
			var got []string
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				rel, _ := filepath.Rel(root, p)
				got = append(got, rel)
				return err
			})
			want := []string{".", "a", "a/y", "b", "b/new", "bin", "bin/tool", "sbin"}
			if !slices.Equal(got, want) {
				t.Errorf("tree %v, want %v", got, want)
			}
			st, err := os.Stat(filepath.Join(root, "bin/tool"))
			if err != nil || st.Mode() != fs.ModeSetuid|0o750 {
				t.Errorf("bin/tool mode %v, %v", st.Mode(), err)
			}
			if b, _ := os.ReadFile(filepath.Join(root, "b/new")); string(b) != "6" {
				t.Errorf("b/new = %q", b)
			}
		})
	}
}

func TestExtractDirDevicesNeedOption(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	archive := makeTar(t, tarEntry{Name: "run/fifo", Type: '6', Mode: 0o600})
	if err := ExtractDir(root, bytes.NewReader(archive), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "run/fifo")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fifo created without AllowDevices: %v", err)
	}
	if err := ExtractDir(root, bytes.NewReader(archive), ApplyOptions{AllowDevices: true}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(filepath.Join(root, "run/fifo")); err != nil || st.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("fifo: %v %v", st, err)
	}
}
