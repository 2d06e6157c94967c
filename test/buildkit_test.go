package test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/buildkit"
	"github.com/keelos/keel/internal/buildkit/buildkittest"
	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/pkgbuild"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// TestMain stops the buildkitd the BuildKit tests share, if one started.

// sharedBuildkitd is one buildkitd for every test of this package, on a
// unix socket and on a loopback TCP port with mutual TLS.
func sharedBuildkitd(t *testing.T) *buildkittest.Daemon {
	t.Helper()
	d, err := buildkittest.Shared(context.Background())
	if err != nil {
		t.Fatalf("starting buildkitd: %v", err)
	}
	return d
}

// deadBuilder is an address where no builder listens.
func deadBuilder(t *testing.T) *buildkit.Config {
	return &buildkit.Config{Addr: "unix://" + filepath.Join(t.TempDir(), "no-buildkitd.sock"), ConnectTimeout: 3 * time.Second}
}

// packageBuilder is a package builder on the default cache (which holds
// the Debian downloads across runs), like keel pkg build's.
func packageBuilder(t *testing.T, bk *buildkit.Config) *pkgbuild.Builder {
	t.Helper()
	testenv.NeedNetwork(t)
	c, err := cache.Open(cache.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := debian.MirrorFromHost()
	if err != nil {
		t.Fatal(err)
	}
	return &pkgbuild.Builder{Cache: c, Debian: debian.NewClient(mirror, c), Epoch: epoch.FromSourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH")),
		BuildKit: bk, Progress: func(msg string) { t.Log(msg) }}
}

// TestBuildKitHelloCSlow builds examples/pkg/hello-c — a C daemon that gcc
// compiles on a Debian base keel unpacked, in BuildKit — on a buildkitd
// reached over a unix socket; builds it again with no builder reachable
// (a cache hit by input hash); builds it on the same kind of builder as a
// remote one, over TCP with mutual TLS, and gets the same bytes; then
// boots an image running it as a service and reads its output.
func TestBuildKitHelloCSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	t.Parallel()
	d := sharedBuildkitd(t)
	ctx := context.Background()
	const dir = "../examples/pkg/hello-c"

	local := d.Config()
	b := packageBuilder(t, &local)
	key, err := b.Key(ctx, dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	// First build: the package an earlier run left in the cache goes, so
	// BuildKit really solves the steps (the Debian downloads and the
	// build's base, keyed by their own inputs, stay cached).
	if err := b.Cache.Remove(key); err != nil && !errors.Is(err, cache.ErrNotFound) {
		t.Fatal(err)
	}
	start := time.Now()
	cold, err := b.BuildResult(ctx, dir, "amd64")
	if err != nil {
		t.Fatalf("building hello-c on %s: %v\nbuildkitd:\n%s", local.Addr, err, tail(d.Log(), 4000))
	}
	coldTime := time.Since(start)
	if cold.CacheHit {
		t.Fatal("the first build was a cache hit")
	}
	digest := imageDigest(t, cold)
	checkHelloCImage(t, cold)

	// Warm: nothing listens where the builder is now said to be.
	warmB := packageBuilder(t, deadBuilder(t))
	start = time.Now()
	warm, err := warmB.BuildResult(ctx, dir, "amd64")
	if err != nil {
		t.Fatalf("second build contacted BuildKit: %v", err)
	}
	warmTime := time.Since(start)
	if !warm.CacheHit || warm.Key != cold.Key || imageDigest(t, warm) != digest {
		t.Fatalf("second build: hit %v key %s digest %s, want a hit of %s %s", warm.CacheHit, warm.Key, imageDigest(t, warm), cold.Key, digest)
	}
	t.Logf("hello-c: built in %.1fs, then cached in %.2fs (no builder contacted)", coldTime.Seconds(), warmTime.Seconds())

	// The same package from a remote builder over mutual TLS: evicted
	// from keel's cache first, so keel must solve it again.
	t.Run("remote builder over TLS", func(t *testing.T) {
		if err := b.Cache.Remove(key); err != nil {
			t.Fatal(err)
		}
		remote := d.TLSConfig()
		rb := packageBuilder(t, &remote)
		start := time.Now()
		res, err := rb.BuildResult(ctx, dir, "amd64")
		if err != nil {
			t.Fatalf("building hello-c on %s: %v", remote.Addr, err)
		}
		if res.CacheHit || imageDigest(t, res) != digest {
			t.Fatalf("remote build: hit %v digest %s, want a fresh build of %s", res.CacheHit, imageDigest(t, res), digest)
		}
		t.Logf("hello-c over TLS: %.1fs, same digest %s", time.Since(start).Seconds(), digest)

		// Without a client certificate the builder refuses keel.
		noCert := buildkit.Config{Addr: d.TCP, CACert: d.TLS.CA, ConnectTimeout: 5 * time.Second}
		var nr *buildkit.NotReachableError
		if err := noCert.Ping(ctx); !errors.As(err, &nr) {
			t.Fatalf("a client without a certificate: %v, want refused", err)
		}
	})

	// The package as a service of an image: the image build finds it in
	// the cache (it never needs the builder) and the daemon runs.
	t.Run("boot", func(t *testing.T) {
		out := t.TempDir()
		if _, err := build.Run(ctx, build.Options{
			Specs: []string{"../examples/hello-c.toml"}, Dir: out, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
		}); err != nil {
			t.Fatalf("building examples/hello-c.toml: %v", err)
		}
		console, err := os.Create(filepath.Join(out, "console.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer console.Close()
		m, err := qemu.Start(ctx, qemu.Options{
			Image: filepath.Join(out, "hello-c-amd64-kernel"), Mem: 1024, Console: console, Timeout: 10 * time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Kill()
		defer func() {
			if t.Failed() {
				t.Logf("console:\n%s", tail(m.Console(), 6000))
			}
		}()
		expect := func(re string) []string {
			t.Helper()
			match, err := m.Expect(regexp.MustCompile(re), 6*time.Minute)
			if err != nil {
				t.Fatalf("waiting for %q: %v", re, err)
			}
			return match
		}
		expect(`keel: milestone services-running`)
		if err := m.Send("\nsleep 6; keel-ctl ps; keel-ctl logs hello-c\n"); err != nil {
			t.Fatal(err)
		}
		expect(`(?m)^hello-c\s+running\s+\d+`)
		expect(`hello-c 1\.0: hello from C on Linux x86_64 \(pid 1\)`)
		expect(`hello-c: tick 2`)
		if err := m.Powerdown(); err != nil {
			t.Fatal(err)
		}
		expect(`keel: milestone shutdown-done`)
		if err := m.Wait(); err != nil {
			t.Fatal(err)
		}
	})
}

func imageDigest(t *testing.T, r *pkgbuild.Result) string {
	t.Helper()
	d, err := r.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// checkHelloCImage checks the package holds only its output path, as keel
// normalises every layer: the static binary, owned by root, at the epoch.
func checkHelloCImage(t *testing.T, r *pkgbuild.Result) {
	t.Helper()
	files := imageFiles(t, r.Image)
	var names []string
	for name := range files {
		names = append(names, name)
	}
	want := []string{"usr", "usr/bin", "usr/bin/hello-c"}
	if strings.Join(sortedStrings(names), " ") != strings.Join(want, " ") {
		t.Fatalf("package files %v, want %v", sortedStrings(names), want)
	}
	h := files["usr/bin/hello-c"]
	if h.Mode&0o111 == 0 || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch.FromSourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))) || h.Size < 100_000 {
		t.Errorf("usr/bin/hello-c: mode %o uid %d gid %d mtime %v size %d", h.Mode, h.Uid, h.Gid, h.ModTime, h.Size)
	}
	cf, err := r.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "amd64" || strings.Join(cf.Config.Entrypoint, " ") != "/usr/bin/hello-c" {
		t.Errorf("config: arch %s entrypoint %v", cf.Architecture, cf.Config.Entrypoint)
	}
	if _, ok := cf.Config.Labels[imagelabel.Debian]; ok {
		t.Errorf("the package claims Debian packages it does not hold")
	}
}

// imageFiles reads the headers of an image's flattened filesystem.
func imageFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]*tar.Header{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = hdr
	}
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
