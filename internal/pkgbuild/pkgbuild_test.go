package pkgbuild

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/spec"
	"github.com/keelos/keel/internal/testenv"
)

// writeFiles creates files (relative path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tinyModule is a self-contained module with a package.toml that builds
// one Go program and places a file: no network needed.
func tinyModule(t *testing.T) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"go.mod":           "module example.com/tiny\n\ngo 1.26\n",
		"cmd/tiny/main.go": "package main\n\nimport \"example.com/tiny/msg\"\n\nfunc main() { println(msg.Text) }\n",
		"msg/msg.go":       "package msg\n\nconst Text = \"one\"\n",
		"motd":             "welcome\n",
		"package.toml": `name = "tiny"

[[go]]
main = "./cmd/tiny"
dest = "/usr/bin/tiny"

[[file]]
path = "/etc/motd"
source = "motd"
mode = "0600"
uid = 7

[[file]]
path = "/var/empty"
directory = true

[config]
command = ["/usr/bin/tiny", "-v"]
env = ["A=1"]
`,
	})
	return dir
}

func newCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// recorder collects progress messages.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) add(m string) { r.mu.Lock(); r.msgs = append(r.msgs, m); r.mu.Unlock() }
func (r *recorder) has(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.msgs, func(m string) bool { return strings.Contains(m, sub) })
}

func TestKeyChangesWithEveryInput(t *testing.T) {
	ctx := context.Background()
	dir := tinyModule(t)
	b := &Builder{Cache: newCache(t)}
	key := func(arch string) string {
		t.Helper()
		k, err := b.Key(ctx, dir, arch)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := key("amd64")
	if !strings.HasPrefix(k1, "tiny:") || len(k1) != len("tiny:")+64 {
		t.Fatalf("key %q: want tiny:<sha256>", k1)
	}
	if key("amd64") != k1 {
		t.Fatal("the key is not stable")
	}
	seen := map[string]string{k1: "original"}
	check := func(what string, k string) {
		t.Helper()
		if prev, ok := seen[k]; ok {
			t.Fatalf("%s: key equals that of %s", what, prev)
		}
		seen[k] = what
	}
	check("arm64", key("arm64"))
	other := &Builder{Cache: b.Cache, Epoch: epoch.Default().Add(time.Hour)}
	k, err := other.Key(ctx, dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	check("another epoch", k)
	writeFiles(t, dir, map[string]string{"msg/msg.go": "package msg\n\nconst Text = \"two\"\n"})
	check("a dependency's source", key("amd64"))
	writeFiles(t, dir, map[string]string{"motd": "changed\n"})
	check("a file source", key("amd64"))
	if err := os.Chmod(filepath.Join(dir, "motd"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("a file mode", key("amd64"))
	writeFiles(t, dir, map[string]string{"package.toml": strings.Replace(readFile(t, filepath.Join(dir, "package.toml")), "-v", "-q", 1)})
	check("package.toml", key("amd64"))

	// An included file outside the package directory is an input too.
	shared := filepath.Join(t.TempDir(), "links.toml")
	writeFiles(t, filepath.Dir(shared), map[string]string{"links.toml": "[[file]]\npath = \"/bin/sh\"\nsymlink = \"busybox\"\n"})
	rel, err := filepath.Rel(dir, shared)
	if err != nil {
		t.Fatal(err)
	}
	pkgTOML := readFile(t, filepath.Join(dir, "package.toml"))
	writeFiles(t, dir, map[string]string{"package.toml": strings.Replace(pkgTOML, "name = \"tiny\"\n", "name = \"tiny\"\ninclude = [\""+rel+"\"]\n", 1)})
	if !strings.Contains(readFile(t, filepath.Join(dir, "package.toml")), "include") {
		t.Fatal("the test's package.toml has no include")
	}
	check("an include", key("amd64"))
	writeFiles(t, filepath.Dir(shared), map[string]string{"links.toml": "[[file]]\npath = \"/bin/ash\"\nsymlink = \"busybox\"\n"})
	check("an included file's content", key("amd64"))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// layerFiles reads every layer of img: path → header and content.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]layerFile{}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		if mt != types.OCILayer {
			t.Fatalf("layer media type %s", mt)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files["/"+strings.Trim(strings.TrimPrefix(h.Name, "./"), "/")] = layerFile{h, data}
		}
		rc.Close()
	}
	return files
}

// elfMachine returns the ELF machine of a regular file in the layers,
// following a hard link to its target.
func elfMachine(t *testing.T, files map[string]layerFile, p string) elf.Machine {
	t.Helper()
	f, ok := files[p]
	if !ok {
		t.Fatalf("%s not in the image", p)
	}
	if f.hdr.Typeflag == tar.TypeLink {
		f = files["/"+strings.TrimPrefix(strings.TrimPrefix(f.hdr.Linkname, "./"), "/")]
	}
	ef, err := elf.NewFile(bytes.NewReader(f.data))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return ef.Machine
}

var wantMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func TestBuildGoAndFilesIsReproducibleAndCached(t *testing.T) {
	ctx := context.Background()
	dir := tinyModule(t)
	rec := &recorder{}
	b := &Builder{Cache: newCache(t), Progress: rec.add}
	r1, err := b.BuildResult(ctx, dir, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if r1.CacheHit || !rec.has("go build") {
		t.Fatalf("first build: hit=%v progress=%v", r1.CacheHit, rec.msgs)
	}
	files := layerFiles(t, r1.Image)
	if m := elfMachine(t, files, "/usr/bin/tiny"); m != elf.EM_AARCH64 {
		t.Fatalf("Go binary machine %v", m)
	}
	if h := files["/usr/bin/tiny"].hdr; h.Mode&0o777 != 0o755 || !h.ModTime.Equal(epoch.Default()) {
		t.Fatalf("binary header %o %v", h.Mode, h.ModTime)
	}
	if f := files["/etc/motd"]; string(f.data) != "welcome\n" || f.hdr.Mode&0o777 != 0o600 || f.hdr.Uid != 7 {
		t.Fatalf("/etc/motd: %q %o uid %d", f.data, f.hdr.Mode, f.hdr.Uid)
	}
	if f, ok := files["/var/empty"]; !ok || f.hdr.Typeflag != tar.TypeDir {
		t.Fatal("/var/empty directory missing")
	}
	cf, err := r1.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" || !cf.Created.Time.Equal(epoch.Default()) {
		t.Fatalf("config platform/created: %s/%s %v", cf.OS, cf.Architecture, cf.Created)
	}
	if cf.Config.Labels[imagelabel.Package] != "tiny" {
		t.Fatalf("labels %v", cf.Config.Labels)
	}
	var c spec.Config
	if err := json.Unmarshal([]byte(cf.Config.Labels[imagelabel.Config]), &c); err != nil || !slices.Equal(c.Command, []string{"/usr/bin/tiny", "-v"}) {
		t.Fatalf("config label %q: %v", cf.Config.Labels[imagelabel.Config], err)
	}
	if !slices.Equal(cf.Config.Entrypoint, c.Command) || !slices.Equal(cf.Config.Env, []string{"A=1"}) {
		t.Fatalf("entrypoint %v env %v", cf.Config.Entrypoint, cf.Config.Env)
	}
	mt, _ := r1.Image.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Fatalf("manifest media type %s", mt)
	}

	// Unchanged inputs: a cache hit, nothing compiled, the same digest.
	rec2 := &recorder{}
	b2 := &Builder{Cache: b.Cache, Progress: rec2.add}
	r2, err := b2.BuildResult(ctx, dir, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if !r2.CacheHit || rec2.has("go build") {
		t.Fatalf("second build: hit=%v progress=%v", r2.CacheHit, rec2.msgs)
	}
	d1, _ := r1.Image.Digest()
	d2, _ := r2.Image.Digest()
	if d1 != d2 {
		t.Fatalf("cached digest %s != built %s", d2, d1)
	}

	// A build from scratch in another cache gives the same bytes.
	r3, err := (&Builder{Cache: newCache(t)}).BuildResult(ctx, dir, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if d3, _ := r3.Image.Digest(); d3 != d1 || r3.CacheHit {
		t.Fatalf("rebuild digest %s (hit %v), want %s", d3, r3.CacheHit, d1)
	}
}

func TestPathFilter(t *testing.T) {
	f := newPathFilter(&spec.Debian{Paths: []string{"/bin", "/usr/lib/*/libc.so*"}, PathsExclude: []string{"/bin/ls"}})
	for _, c := range []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"/bin", true, true},
		{"/bin/busybox", false, true},
		{"/bin/ls", false, false},
		{"/usr", true, true}, // may hold a match
		{"/usr/lib/x86_64-linux-gnu", true, true},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", false, true},
		{"/usr/lib/x86_64-linux-gnu/libm.so.6", false, false},
		{"/etc", true, false},
		{"/etc/passwd", false, false},
	} {
		if got := f.keep(c.path, c.isDir); got != c.want {
			t.Errorf("keep(%s) = %v, want %v", c.path, got, c.want)
		}
	}
	def := newPathFilter(&spec.Debian{})
	for p, want := range map[string]bool{"/usr/share/doc/x/copyright": false, "/usr/share/man": false, "/usr/share/misc": true, "/bin/sh": true} {
		if got := def.keep(p, false); got != want {
			t.Errorf("default keep(%s) = %v, want %v", p, got, want)
		}
	}
	keepDoc := newPathFilter(&spec.Debian{Paths: []string{"/usr/share/doc/busybox"}})
	if !keepDoc.keep("/usr/share/doc/busybox/copyright", false) {
		t.Error("an explicit path under a default drop was dropped")
	}
}

func TestBuildRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	ctx := context.Background()
	mirror, err := debian.MirrorFromHost()
	if err != nil {
		t.Fatal(err)
	}
	c := newCache(t)
	dir, err := filepath.Abs("testdata/hello")
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		rec := &recorder{}
		b := &Builder{Cache: c, Debian: debian.NewClient(mirror, c), Progress: rec.add}
		r1, err := b.BuildResult(ctx, dir, arch)
		if err != nil {
			t.Fatal(err)
		}
		if r1.CacheHit || !rec.has("fetch busybox-static") || !rec.has("go build") {
			t.Fatalf("%s first build: hit=%v progress=%v", arch, r1.CacheHit, rec.msgs)
		}
		files := layerFiles(t, r1.Image)
		if m := elfMachine(t, files, "/usr/bin/hello"); m != wantMachine[arch] {
			t.Fatalf("%s: Go binary is %v", arch, m)
		}
		if m := elfMachine(t, files, "/bin/busybox"); m != wantMachine[arch] {
			t.Fatalf("%s: busybox is %v", arch, m)
		}
		if _, ok := files["/usr/share/doc/busybox-static/copyright"]; ok {
			t.Fatalf("%s: /usr/share/doc was not dropped", arch)
		}
		if h := files["/bin/sh"].hdr; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Fatalf("%s: /bin/sh symlink %+v", arch, h)
		}
		cf, _ := r1.Image.ConfigFile()
		var debs []imagelabel.Deb
		if err := json.Unmarshal([]byte(cf.Config.Labels[imagelabel.Debian]), &debs); err != nil ||
			!slices.ContainsFunc(debs, func(d imagelabel.Deb) bool { return d.Name == "busybox-static" && len(d.SHA256) == 64 }) {
			t.Fatalf("%s: debian label %q", arch, cf.Config.Labels[imagelabel.Debian])
		}

		// A fresh builder (new Debian client) over the same cache: a hit,
		// no download, no compile, identical digest.
		rec2 := &recorder{}
		b2 := &Builder{Cache: c, Debian: debian.NewClient(mirror, c), Progress: rec2.add}
		r2, err := b2.BuildResult(ctx, dir, arch)
		if err != nil {
			t.Fatal(err)
		}
		if !r2.CacheHit || rec2.has("fetch") || rec2.has("go build") {
			t.Fatalf("%s second build: hit=%v progress=%v", arch, r2.CacheHit, rec2.msgs)
		}
		d1, _ := r1.Image.Digest()
		d2, _ := r2.Image.Digest()
		if d1 != d2 || r1.Key != r2.Key {
			t.Fatalf("%s: second build %s/%s, first %s/%s", arch, r2.Key, d2, r1.Key, d1)
		}
	}
}
