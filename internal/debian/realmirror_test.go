package debian

// Tests named *RealMirror talk to the Debian mirror of the host's apt
// configuration (or $KEEL_DEBIAN_MIRROR).

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/keelos/keel/internal/testenv"
)

const testSuite = "bookworm"

var (
	shared     *dirStore
	sharedOnce sync.Once
)

// sharedStore is one store for all real-mirror tests of a run, so each
// index is downloaded once.
func sharedStore(t *testing.T) *dirStore {
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keel-debian-test-")
		if err != nil {
			t.Fatal(err)
		}
		shared = &dirStore{dir: dir}
	})
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func testMirror(t *testing.T) string {
	t.Helper()
	m, err := MirrorFromHost()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResolveRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	ctx := context.Background()
	mirror := testMirror(t)
	store := sharedStore(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			start := time.Now()
			cold := NewClient(mirror, store)
			got, err := cold.Resolve(ctx, testSuite, arch, []string{"busybox-static", "openssh-server"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			coldTime := time.Since(start)
			downloads := store.downloads

			start = time.Now()
			warm := NewClient(mirror, store)
			again, err := warm.Resolve(ctx, testSuite, arch, []string{"busybox-static", "openssh-server"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			warmTime := time.Since(start)
			if store.downloads != downloads {
				t.Errorf("warm resolve downloaded %d files", store.downloads-downloads)
			}
			if !reflect.DeepEqual(got, again) {
				t.Error("warm resolve differs from cold")
			}
			t.Logf("%s: %d packages, cold %v, warm %v", arch, len(got), coldTime.Round(time.Millisecond), warmTime.Round(time.Millisecond))
			if testing.Verbose() {
				t.Log(names(got))
			}

			var names []string
			for _, p := range got {
				names = append(names, p.Name)
				if p.Arch != arch && p.Arch != "all" {
					t.Errorf("%s has architecture %s", p.Name, p.Arch)
				}
				if len(p.SHA256) != 64 || p.Size <= 0 || !strings.HasSuffix(p.Filename, ".deb") || p.Source == "" {
					t.Errorf("incomplete package %+v", p)
				}
			}
			if !slices.IsSorted(names) {
				t.Errorf("result not sorted: %v", names)
			}
			for _, want := range []string{"busybox-static", "openssh-server", "openssh-client", "libc6", "libssl3", "zlib1g"} {
				if !slices.Contains(names, want) {
					t.Errorf("%s missing from %v", want, names)
				}
			}
			for _, unwanted := range []string{"ncurses-term", "xauth"} { // Recommends only
				if slices.Contains(names, unwanted) {
					t.Errorf("%s (a Recommends) was resolved", unwanted)
				}
			}

			// Excluding libc6 drops it without traversing it.
			ex, err := warm.Resolve(ctx, testSuite, arch, []string{"openssh-server"}, []string{"libc6"})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ex {
				if p.Name == "libc6" || p.Name == "libgcc-s1" {
					t.Errorf("excluded %s (or its dependency) was resolved", p.Name)
				}
			}

			_, err = warm.Resolve(ctx, testSuite, arch, []string{"no-such-package-keel"}, nil)
			if err == nil || err.Error() != "no-such-package-keel: not found" {
				t.Errorf("unknown package: %v", err)
			}
		})
	}
}

func resolveOne(t *testing.T, c *Client, arch, name string) Package {
	t.Helper()
	pkgs, err := c.Resolve(context.Background(), testSuite, arch, []string{name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("%s not in %v", name, pkgs)
	return Package{}
}

func TestFetchDataTarRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	var last struct{ done, total int64 }
	c := NewClient(testMirror(t), sharedStore(t), WithProgress(func(name string, done, total int64) {
		last.done, last.total = done, total
	}))
	p := resolveOne(t, c, "arm64", "busybox-static")
	path, err := c.Fetch(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if last.done != p.Size || last.total != p.Size {
		t.Errorf("last progress %d/%d, want %d/%d", last.done, last.total, p.Size, p.Size)
	}

	ctl, err := Control(path)
	if err != nil {
		t.Fatal(err)
	}
	if ctl["Package"] != "busybox-static" || ctl["Architecture"] != "arm64" || ctl["Version"] != p.Version {
		t.Errorf("control: %v", ctl)
	}

	rc, err := DataTar(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatal("no ./bin/busybox in data.tar")
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "./bin/busybox" {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("busybox is for %v, want EM_AARCH64", f.Machine)
		}
		return
	}
}

func TestFetchRefusesTamperedDebRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	ctx := context.Background()
	mirror := testMirror(t)
	c := NewClient(mirror, sharedStore(t))
	p := resolveOne(t, c, "arm64", "busybox-static")
	good, err := c.Fetch(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01

	// A store that hands out what it holds without checking it: the
	// client must still refuse the tampered bytes.
	trusting := &dirStore{dir: t.TempDir(), trusting: true}
	if err := os.WriteFile(trusting.path("sha256:"+p.SHA256), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(mirror, trusting).Fetch(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("tampered .deb from the store: got %v, want a SHA-256 mismatch", err)
	}

	// A mirror serving the tampered bytes: the store refuses them.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(data)
	}))
	defer srv.Close()
	_, err = NewClient(srv.URL, &dirStore{dir: t.TempDir()}).Fetch(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("tampered .deb from the mirror: got %v, want a digest mismatch", err)
	}
}

func fetchInRelease(t *testing.T, mirror string) []byte {
	t.Helper()
	resp, err := http.Get(mirror + "/dists/" + testSuite + "/InRelease")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("InRelease: %v %s", err, resp.Status)
	}
	return data
}

func TestInReleaseSignatureRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	mirror := testMirror(t)
	data := fetchInRelease(t, mirror)
	keyring, err := ArchiveKeyring()
	if err != nil {
		t.Fatal(err)
	}
	text, err := verifyClearsigned(data, keyring)
	if err != nil {
		t.Fatalf("real InRelease: %v", err)
	}
	if _, err := parseRelease(string(text), testSuite, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := parseRelease(string(text), "trixie", time.Now()); err == nil {
		t.Error("a bookworm release was accepted for trixie")
	}

	i := bytes.Index(data, []byte("Origin: Debian"))
	if i < 0 {
		t.Fatal("no Origin field")
	}
	tampered := bytes.Clone(data)
	tampered[i+len("Origin: Debia")] = 'm'
	_, err = verifyClearsigned(tampered, keyring)
	if err == nil || !strings.Contains(err.Error(), "bad OpenPGP signature") {
		t.Fatalf("tampered InRelease: got %v", err)
	}

	_, err = verifyClearsigned(data, openpgp.EntityList{})
	if err == nil || !strings.Contains(err.Error(), "no key of the Debian archive keyring") {
		t.Fatalf("unknown key: got %v", err)
	}

	// Through the client: a mirror serving the tampered InRelease yields
	// an error and no packages.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/InRelease") {
			w.Write(tampered)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	pkgs, err := NewClient(srv.URL, &dirStore{dir: t.TempDir()}).Resolve(context.Background(), testSuite, "amd64", []string{"busybox-static"}, nil)
	if err == nil || pkgs != nil || !strings.Contains(err.Error(), "bad OpenPGP signature") {
		t.Fatalf("Resolve with a tampered InRelease: %v, %v", pkgs, err)
	}
	var he *httpError
	if errors.As(err, &he) {
		t.Fatalf("failed on a download, not the signature: %v", err)
	}
}
