package pkgbuild

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/keelos/keel/internal/buildkit"
	"github.com/keelos/keel/internal/buildkit/buildkittest"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/testenv"
)

// TestMain stops the buildkitd the BuildKit tests share, if one started.
func TestMain(m *testing.M) {
	code := m.Run()
	buildkittest.StopShared()
	os.Exit(code)
}

// fakeShell is a static Go program installed as /bin/sh in a base: run
// steps execute `/bin/sh -ec CMD`, and it reports what the step saw, so
// steps run without any Debian package.
const fakeShell = `package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "-ec" {
		fmt.Fprintln(os.Stderr, "usage: sh -ec CMD")
		os.Exit(2)
	}
	wd, _ := os.Getwd()
	ifs, _ := net.Interfaces()
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	// The cache mount is writable and outlives the step.
	if err := os.WriteFile("/cache/seen", []byte("x"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	data, err := os.ReadFile("data.txt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, _ := os.Stat("/etc/motd")
	report := fmt.Sprintf("cmd=%s\ncwd=%s\narch=%s\nfoo=%s\nifaces=%s\ndata=%smotd-mode=%v\n",
		os.Args[2], wd, os.Getenv("TARGETARCH"), os.Getenv("FOO"), strings.Join(names, ","), data, st.Mode())
	os.MkdirAll("/out", 0o755)
	if err := os.WriteFile("/out/report", []byte(report), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// buildModule is a module with three packages: tool (a Go program and a
// file owned by uid 7), steps (its own base is a fake /bin/sh, then copy
// and run steps) and files (from scratch, copy steps only, one of them
// out of tool).
func buildModule(t *testing.T) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"go.mod":         "module example.com/bk\n\ngo 1.26\n",
		"cmd/sh/main.go": fakeShell,
		"steps/data.txt": "one\n",
		"files/data.txt": "two\n",
		"tool/motd":      "hi\n",
		"tool/package.toml": `name = "tool"

[[go]]
main = "../cmd/sh"
dest = "/bin/sh"

[[file]]
path = "/etc/motd"
source = "motd"
uid = 7
gid = 8
mode = "0640"
`,
		"steps/package.toml": `name = "steps"

[[go]]
main = "../cmd/sh"
dest = "/bin/sh"

[[file]]
path = "/etc/motd"
contents = "hello\n"
mode = "0600"

[build]
output = ["/out", "/src"]

[[build.step]]
copy = "data.txt"
to = "/src/data.txt"

[[build.step]]
run = "make it"
cwd = "/src"
env = ["FOO=bar"]
cache = ["/cache"]
`,
		"files/package.toml": `name = "files"

[build]
from = "scratch"

[[build.step]]
copy = "."
to = "/data"

[[build.step]]
copy = "/"
to = "/tool"
from = "../tool"
`,
	})
	return dir
}

func sharedBuilder(t *testing.T) *buildkit.Config {
	t.Helper()
	d, err := buildkittest.Shared(context.Background())
	if err != nil {
		t.Fatalf("starting buildkitd: %v", err)
	}
	c := d.Config()
	return &c
}

func deadBuilder(t *testing.T) *buildkit.Config {
	return &buildkit.Config{Addr: "unix://" + filepath.Join(t.TempDir(), "none.sock"), ConnectTimeout: 3 * time.Second}
}

func flatten(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdrs, contents := map[string]*tar.Header{}, map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs, contents
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[hdr.Name] = hdr
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			contents[hdr.Name] = string(b)
		}
	}
}

// TestBuildStepsKey: the [build] steps, the files they copy and the
// packages they start from are inputs; the builder is not.
func TestBuildStepsKey(t *testing.T) {
	dir := buildModule(t)
	ctx := context.Background()
	b := &Builder{Cache: newCache(t), BuildKit: deadBuilder(t)}
	key := func(pkg string) string {
		t.Helper()
		k, err := b.Key(ctx, filepath.Join(dir, pkg), "amd64")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	baseKey := func() string {
		t.Helper()
		p, err := b.plan(ctx, filepath.Join(dir, "steps"), "amd64")
		if err != nil {
			t.Fatal(err)
		}
		return p.baseKey
	}
	base := baseKey()
	if !strings.HasPrefix(base, "steps-build-base:") {
		t.Fatalf("base key %q", base)
	}
	steps, files := key("steps"), key("files")
	if steps == files || key("steps") != steps {
		t.Fatalf("keys: %s %s", steps, files)
	}
	other := &Builder{Cache: b.Cache, BuildKit: &buildkit.Config{Addr: "tcp://192.0.2.1:1234"}}
	if k, _ := other.Key(ctx, filepath.Join(dir, "steps"), "amd64"); k != steps {
		t.Errorf("the builder's address changed the key")
	}
	if k, _ := b.Key(ctx, filepath.Join(dir, "steps"), "arm64"); k == steps {
		t.Errorf("arm64 has amd64's key")
	}
	writeFiles(t, dir, map[string]string{"steps/data.txt": "changed\n"})
	if key("steps") == steps {
		t.Errorf("a copied file's change kept the key")
	}
	if baseKey() != base {
		t.Errorf("a copied file's change changed the base's key")
	}
	stepsToml := filepath.Join(dir, "steps/package.toml")
	st, _ := os.ReadFile(stepsToml)
	writeFiles(t, dir, map[string]string{"steps/package.toml": strings.Replace(string(st), `contents = "hello\n"`, `contents = "bye\n"`, 1)})
	if baseKey() == base {
		t.Errorf("a change of the base's [[file]] kept the base's key")
	}
	// files copies from tool: tool's inputs are files' inputs.
	writeFiles(t, dir, map[string]string{"tool/motd": "changed\n"})
	if key("files") == files {
		t.Errorf("a change of the package copied from kept the key")
	}
	toml := filepath.Join(dir, "files/package.toml")
	data, _ := os.ReadFile(toml)
	writeFiles(t, dir, map[string]string{"files/package.toml": strings.Replace(string(data), `to = "/data"`, `to = "/data2"`, 1)})
	if key("files") == files {
		t.Errorf("a step's change kept the key")
	}
	// A package may not build from itself.
	writeFiles(t, dir, map[string]string{"files/package.toml": strings.Replace(string(data), `from = "../tool"`, `from = "../files"`, 1)})
	if _, err := b.Key(ctx, filepath.Join(dir, "files"), "amd64"); err == nil || !strings.Contains(err.Error(), "build from each other") {
		t.Errorf("a cycle: %v", err)
	}
}

// TestBuildStepsNeedABuilder: with no builder reachable, a package with
// [build] fails saying how to start one; one without [build] never asks.
func TestBuildStepsNeedABuilder(t *testing.T) {
	dir := buildModule(t)
	b := &Builder{Cache: newCache(t), BuildKit: deadBuilder(t)}
	_, err := b.Build(context.Background(), filepath.Join(dir, "steps"), "amd64")
	var nr *buildkit.NotReachableError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "buildkitd --addr unix://") || !strings.Contains(err.Error(), "KEEL_BUILDKIT_HOST") {
		t.Fatalf("got %v", err)
	}
	if _, err := b.Build(context.Background(), filepath.Join(dir, "tool"), "amd64"); err != nil {
		t.Fatal(err)
	}
}

// TestBuildStepsSlow solves real steps on buildkitd: a run step on a base
// keel built (its own [[go]] and [[file]] parts, sent as a local context)
// with a working directory, env, a cache mount and no network; then a
// copy-only package for amd64 and arm64 copying from another package,
// whose owners survive; a second build of each is a cache hit that never
// contacts a builder.
func TestBuildStepsSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	dir := buildModule(t)
	ctx := context.Background()
	c := newCache(t)
	b := &Builder{Cache: c, BuildKit: sharedBuilder(t)}

	res, err := b.BuildResult(ctx, filepath.Join(dir, "steps"), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	hdrs, contents := flatten(t, res.Image)
	want := "cmd=make it\ncwd=/src\narch=amd64\nfoo=bar\nifaces=lo\ndata=one\nmotd-mode=-rw-------\n"
	if got := contents["out/report"]; got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	var names []string
	for n, h := range hdrs {
		names = append(names, n)
		if !h.ModTime.Equal(epoch.Default()) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v owner %d:%d", n, h.ModTime, h.Uid, h.Gid)
		}
	}
	if len(names) != 4 || hdrs["src/data.txt"] == nil || hdrs["out"] == nil {
		t.Errorf("output paths only, got %v", names)
	}
	digest, _ := res.Image.Digest()
	if p, err := b.plan(ctx, filepath.Join(dir, "steps"), "amd64"); err != nil {
		t.Fatal(err)
	} else if _, err := c.Image(p.baseKey); err != nil {
		t.Errorf("the build base is not cached: %v", err)
	}

	for _, arch := range []string{"amd64", "arm64"} {
		res, err := b.BuildResult(ctx, filepath.Join(dir, "files"), arch)
		if err != nil {
			t.Fatal(err)
		}
		hdrs, contents := flatten(t, res.Image)
		if contents["data/data.txt"] != "two\n" || contents["tool/etc/motd"] != "hi\n" {
			t.Errorf("%s: files %v", arch, contents)
		}
		if h := hdrs["tool/etc/motd"]; h == nil || h.Uid != 7 || h.Gid != 8 || h.Mode&0o777 != 0o640 {
			t.Errorf("%s: tool/etc/motd %+v, want 7:8 0640", arch, h)
		}
		f, err := elf.NewFile(strings.NewReader(contents["tool/bin/sh"]))
		if err != nil {
			t.Fatalf("%s: tool/bin/sh: %v", arch, err)
		}
		if m := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; f.Machine != m {
			t.Errorf("%s: tool/bin/sh is for %v", arch, f.Machine)
		}
		cf, _ := res.Image.ConfigFile()
		if cf.Architecture != arch {
			t.Errorf("%s: config says %s", arch, cf.Architecture)
		}
	}
	idx, key, err := b.BuildIndex(ctx, filepath.Join(dir, "files"), []string{"arm64", "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Errorf("index %s: %+v", key, im.Manifests)
	}
	if _, err := c.Index(key); err != nil {
		t.Errorf("index %s not cached: %v", key, err)
	}

	// Warm: no builder at all.
	warm := &Builder{Cache: c, BuildKit: deadBuilder(t)}
	res, err = warm.BuildResult(ctx, filepath.Join(dir, "steps"), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := res.Image.Digest(); !res.CacheHit || d != digest {
		t.Errorf("warm build: hit %v digest %s want %s", res.CacheHit, d, digest)
	}
	if _, _, err := warm.BuildIndex(ctx, filepath.Join(dir, "files"), []string{"amd64", "arm64"}); err != nil {
		t.Errorf("warm multi-arch build: %v", err)
	}
}
