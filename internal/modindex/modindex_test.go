package modindex

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/keelos/keel/internal/kmod"
	"github.com/keelos/keel/internal/kmod/kmodtest"
)

// tree is a kernel's module files, compressed as Debian ships them, and
// counts how often a module is opened (that is, decompressed and parsed).
type tree struct {
	files   []File
	content map[string][]byte // by digest
	opened  int
}

func newTree(t *testing.T, modinfo map[string]string) *tree {
	t.Helper()
	tr := &tree{content: map[string][]byte{}}
	for _, p := range []string{"kernel/net/a.ko.xz", "kernel/net/b-dash.ko.xz", "kernel/fs/c.ko"} {
		info, ok := modinfo[p]
		if !ok {
			continue
		}
		data := kmodtest.ModuleELF(t, info)
		if strings.HasSuffix(p, ".xz") {
			var buf bytes.Buffer
			w, err := xz.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			data = buf.Bytes()
		}
		sum := sha256.Sum256(data)
		d := "sha256:" + hex.EncodeToString(sum[:])
		tr.content[d] = data
		tr.files = append(tr.files, File{Path: p, Digest: d})
	}
	return tr
}

func (tr *tree) open(f File) (io.ReadCloser, error) {
	tr.opened++
	return io.NopCloser(bytes.NewReader(tr.content[f.Digest])), nil
}

var modinfo = map[string]string{
	"kernel/net/a.ko.xz":      "name=a\x00depends=c,b_dash\x00",
	"kernel/net/b-dash.ko.xz": "depends=\x00",
	"kernel/fs/c.ko":          "name=c\x00",
}

// parsed is what kmod.Parse gives for each file, with no index at all.
func parsed(t *testing.T, tr *tree) []kmod.Module {
	t.Helper()
	var out []kmod.Module
	for _, f := range tr.files {
		m, err := kmod.Parse(f.Path, bytes.NewReader(tr.content[f.Digest]))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func lookup(t *testing.T, dir string, tr *tree) ([]kmod.Module, []string, []string) {
	t.Helper()
	var warnings, progress []string
	x, err := Open(dir, func(msg string) { warnings = append(warnings, msg) })
	if err != nil {
		t.Fatal(err)
	}
	mods, err := x.Modules(context.Background(), tr.files, tr.open, func(msg string) { progress = append(progress, msg) })
	if err != nil {
		t.Fatal(err)
	}
	return mods, warnings, progress
}

func TestSecondLookupOpensNoModule(t *testing.T) {
	dir := t.TempDir()
	tr := newTree(t, modinfo)
	want := parsed(t, tr)

	mods, warnings, progress := lookup(t, dir, tr)
	if tr.opened != len(tr.files) || len(progress) != 1 || len(warnings) != 0 {
		t.Fatalf("first lookup: %d of %d modules opened, progress %q, warnings %q", tr.opened, len(tr.files), progress, warnings)
	}
	if !reflect.DeepEqual(mods, want) {
		t.Fatalf("first lookup: %+v, want %+v", mods, want)
	}

	// A new Index on the same directory: as the next keel process is.
	tr.opened = 0
	mods, warnings, progress = lookup(t, dir, tr)
	if tr.opened != 0 || len(progress) != 0 || len(warnings) != 0 {
		t.Fatalf("second lookup: %d modules opened, progress %q, warnings %q", tr.opened, progress, warnings)
	}
	if !reflect.DeepEqual(mods, want) {
		t.Fatalf("second lookup: %+v, want %+v", mods, want)
	}
}

func TestChangedModuleIsReadAgain(t *testing.T) {
	dir := t.TempDir()
	lookup(t, dir, newTree(t, modinfo))

	changed := map[string]string{}
	for p, info := range modinfo {
		changed[p] = info
	}
	changed["kernel/fs/c.ko"] = "name=c\x00depends=d\x00"
	tr := newTree(t, changed)
	mods, _, _ := lookup(t, dir, tr)
	if tr.opened != len(tr.files) {
		t.Fatalf("%d of %d modules opened: the index of other files was used", tr.opened, len(tr.files))
	}
	if want := parsed(t, tr); !reflect.DeepEqual(mods, want) {
		t.Fatalf("got %+v, want %+v", mods, want)
	}
}

// entryPath is the one entry in dir.
func entryPath(t *testing.T, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "[0-9a-f]*"))
	if err != nil || len(names) != 1 {
		t.Fatalf("entries %v (%v), want one", names, err)
	}
	return names[0]
}

// sealed is an entry for body with a correct checksum: damage that a
// checksum cannot catch, as a hostile writer makes it.
func sealed(body string) string {
	sum := sha256.Sum256([]byte(body))
	return format + "sha256:" + hex.EncodeToString(sum[:]) + "\n" + body
}

func TestCorruptEntryIsRecomputed(t *testing.T) {
	tr := newTree(t, modinfo)
	want := parsed(t, tr)
	reseal := func(t *testing.T, old []byte, edit func(e *entry)) string {
		_, rest, _ := bytes.Cut(old[len(format):], []byte("\n"))
		var e entry
		if err := json.Unmarshal(rest, &e); err != nil {
			t.Fatal(err)
		}
		edit(&e)
		body, _ := json.Marshal(e)
		return sealed(string(body))
	}
	cases := map[string]func(t *testing.T, old []byte) string{
		"flipped byte": func(_ *testing.T, old []byte) string {
			b := bytes.Clone(old)
			b[len(b)-10] ^= 1
			return string(b)
		},
		"truncated":    func(_ *testing.T, old []byte) string { return string(old[:len(old)/2]) },
		"empty":        func(*testing.T, []byte) string { return "" },
		"other format": func(_ *testing.T, old []byte) string { return "keel-modindex 0\n" + string(old[len(format):]) },
		"unknown field": func(_ *testing.T, old []byte) string {
			_, rest, _ := bytes.Cut(old[len(format):], []byte("\n"))
			return sealed(`{"loader":"/tmp/x",` + string(rest[1:]))
		},
		"other key": func(t *testing.T, old []byte) string {
			return reseal(t, old, func(e *entry) { e.Key = "sha256:" + strings.Repeat("0", 64) })
		},
		"module missing": func(t *testing.T, old []byte) string {
			return reseal(t, old, func(e *entry) { e.Modules = e.Modules[1:] })
		},
		"other digest": func(t *testing.T, old []byte) string {
			return reseal(t, old, func(e *entry) { e.Modules[0].Digest = "sha256:" + strings.Repeat("1", 64) })
		},
		"bad name": func(t *testing.T, old []byte) string {
			return reseal(t, old, func(e *entry) { e.Modules[0].Name = "../x" })
		},
		"dashed dependency": func(t *testing.T, old []byte) string {
			return reseal(t, old, func(e *entry) { e.Modules[0].Depends = []string{"b-dash"} })
		},
		"unsorted dependencies": func(t *testing.T, old []byte) string {
			return reseal(t, old, func(e *entry) {
				for i := range e.Modules {
					if e.Modules[i].Name == "a" {
						e.Modules[i].Depends = []string{"c", "b_dash"}
					}
				}
			})
		},
		"trailing data": func(t *testing.T, old []byte) string {
			_, rest, _ := bytes.Cut(old[len(format):], []byte("\n"))
			return sealed(string(rest) + "{}")
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			lookup(t, dir, tr)
			p := entryPath(t, dir)
			old, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(damage(t, old)), 0o644); err != nil {
				t.Fatal(err)
			}

			tr.opened = 0
			mods, warnings, _ := lookup(t, dir, tr)
			if tr.opened != len(tr.files) {
				t.Fatalf("%d of %d modules read again", tr.opened, len(tr.files))
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], "corrupt") || !strings.Contains(warnings[0], p) {
				t.Fatalf("warnings %q, want one naming %s as corrupt", warnings, p)
			}
			if !reflect.DeepEqual(mods, want) {
				t.Fatalf("got %+v, want %+v", mods, want)
			}
			if now, err := os.ReadFile(p); err != nil || !bytes.Equal(now, old) {
				t.Fatalf("the entry is not written again as it was (%v)", err)
			}
		})
	}
}

func TestEntryThatIsNoFileIsReplaced(t *testing.T) {
	dir := t.TempDir()
	tr := newTree(t, modinfo)
	lookup(t, dir, tr)
	p := entryPath(t, dir)
	outside := filepath.Join(t.TempDir(), "elsewhere")
	old, _ := os.ReadFile(p)
	os.WriteFile(outside, old, 0o644)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	tr.opened = 0
	_, warnings, _ := lookup(t, dir, tr)
	if tr.opened != len(tr.files) || len(warnings) != 1 {
		t.Fatalf("a symlinked entry: %d modules read, warnings %q; want it refused and replaced", tr.opened, warnings)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("entry after the lookup: %v, %v", fi, err)
	}
}

func TestUnreadableModuleFailsTheLookup(t *testing.T) {
	tr := newTree(t, modinfo)
	tr.content[tr.files[0].Digest] = []byte("not a module")
	x, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.Modules(context.Background(), tr.files, tr.open, nil)
	if err == nil || !strings.Contains(err.Error(), tr.files[0].Path) {
		t.Fatalf("err = %v, want one naming %s", err, tr.files[0].Path)
	}
	if names, _ := filepath.Glob(filepath.Join(x.dir, "*")); len(names) != 0 {
		t.Fatalf("a failed lookup left %v", names)
	}
}

func TestDuplicatePathsAreRefused(t *testing.T) {
	tr := newTree(t, modinfo)
	x, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.Modules(context.Background(), append(tr.files, tr.files[0]), tr.open, nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s listed twice", tr.files[0].Path)) {
		t.Fatalf("err = %v", err)
	}
}
