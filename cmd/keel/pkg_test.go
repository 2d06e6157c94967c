package main

import (
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPkgPushDestinations pushes to a registry on loopback: to a
// repository each package goes as NAME:TAG with the tag show-tag prints;
// a full reference is used as given; a full reference for several
// packages is refused before anything is built.
func TestPkgPushDestinations(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	reg := u.Host
	dir := t.TempDir()
	plain := writeDir(t, dir, "plain", "name = \"plain\"\n\n[[file]]\npath = \"/etc/motd\"\ncontents = \"hi\\n\"\n")
	other := writeDir(t, dir, "other", "name = \"other\"\n\n[[file]]\npath = \"/etc/motd\"\ncontents = \"ho\\n\"\n")
	cacheDir := t.TempDir()

	code, out, errOut := keel(t, "pkg", "show-tag", "--cache", cacheDir, plain)
	if code != 0 {
		t.Fatalf("show-tag: exit %d: %s", code, errOut)
	}
	tag := strings.TrimSpace(out)
	if !strings.HasPrefix(tag, "plain:") || len(tag) != len("plain:")+64 {
		t.Fatalf("show-tag printed %q, want plain:HASH", out)
	}

	code, out, errOut = keel(t, "pkg", "push", "--cache", cacheDir, plain, reg+"/keel")
	if code != 0 {
		t.Fatalf("push to a repository: exit %d: %s", code, errOut)
	}
	want := reg + "/keel/" + tag + "@"
	if !strings.HasPrefix(strings.TrimSpace(out), want) {
		t.Fatalf("pushed %q, want %s…", out, want)
	}
	checkPushed(t, strings.TrimSpace(out))

	code, out, errOut = keel(t, "pkg", "push", "--cache", cacheDir, plain, reg+"/team/motd:1.0")
	if code != 0 {
		t.Fatalf("push to a full reference: exit %d: %s", code, errOut)
	}
	if want := reg + "/team/motd:1.0@"; !strings.HasPrefix(strings.TrimSpace(out), want) {
		t.Fatalf("pushed %q, want the reference as given, %s…", out, want)
	}
	checkPushed(t, strings.TrimSpace(out))

	emptyCache := t.TempDir()
	code, _, errOut = keel(t, "pkg", "push", "--cache", emptyCache, plain, other, reg+"/team/motd:1.0")
	if code != 2 || !strings.Contains(errOut, "names one image") || !strings.Contains(errOut, "without a tag") {
		t.Fatalf("two packages to one reference: exit %d, %s", code, errOut)
	}
	if ents, err := os.ReadDir(emptyCache); err != nil || len(ents) != 0 {
		t.Fatalf("the refused push wrote to the cache first: %v %v", ents, err)
	}
}

// writeDir writes a package.toml into dir/name and returns that directory.
func writeDir(t *testing.T, dir, pkg, toml string) string {
	t.Helper()
	p := filepath.Join(dir, pkg)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "package.toml", toml)
	return p
}

// checkPushed reads REF@DIGEST back from the registry as an index of
// both architectures with that digest.
func checkPushed(t *testing.T, refDigest string) {
	t.Helper()
	ref, dig, _ := strings.Cut(refDigest, "@")
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	got, err := idx.Digest()
	if err != nil || got.String() != dig {
		t.Fatalf("%s: digest %v (%v), pushed %s", ref, got, err, dig)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 {
		t.Fatalf("%s: %d manifests, want amd64 and arm64", ref, len(m.Manifests))
	}
}
