package source

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/pkgbuild"
	"github.com/keelos/keel/internal/spec"
)

// platformImage is a random image whose config names linux/arch.
func platformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// twoPlatformIndex returns an index of linux/amd64 and linux/arm64
// images, and the images by arch.
func twoPlatformIndex(t *testing.T) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	imgs := map[string]v1.Image{}
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img := platformImage(t, arch)
		imgs[arch] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx, imgs
}

// serve starts h on a loopback port and returns its host:port and a
// function that stops it.
func serve(t *testing.T, h http.Handler) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	stop := func() { srv.Close() }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func newRegistry() http.Handler {
	return registry.New(registry.Logger(log.New(io.Discard, "", 0)))
}

func newResolver(t *testing.T) *Resolver {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Resolver{Cache: c}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func archOf(t *testing.T, img v1.Image) string {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.OS + "/" + cf.Architecture
}

func TestRegistryPicksArm64FromIndexAndCachesIt(t *testing.T) {
	ctx := context.Background()
	host, stop := serve(t, newRegistry())
	idx, imgs := twoPlatformIndex(t)
	tag, err := name.NewTag(host + "/keel/multi:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	byDigest := host + "/keel/multi@" + idxDigest.String()

	r := newResolver(t)
	for _, ref := range []string{tag.String(), byDigest} {
		img, err := r.Image(ctx, spec.ImageRef{Ref: ref}, "arm64")
		if err != nil {
			t.Fatal(err)
		}
		if got := archOf(t, img); got != "linux/arm64" {
			t.Fatalf("%s: got %s", ref, got)
		}
		if got, want := digestOf(t, img), digestOf(t, imgs["arm64"]); got != want {
			t.Fatalf("%s: digest %s, want the arm64 manifest %s", ref, got, want)
		}
	}

	// With the registry gone, both the tag and the digest come from the
	// cache; only --pull has to go back to the registry for the tag.
	stop()
	for _, ref := range []string{tag.String(), byDigest} {
		img, err := r.Image(ctx, spec.ImageRef{Ref: ref}, "arm64")
		if err != nil {
			t.Fatalf("%s offline: %v", ref, err)
		}
		if got, want := digestOf(t, img), digestOf(t, imgs["arm64"]); got != want {
			t.Fatalf("%s offline: digest %s, want %s", ref, got, want)
		}
		// Reading the layers works from the cache alone.
		if err := readAllLayers(img); err != nil {
			t.Fatalf("%s offline: %v", ref, err)
		}
	}
	r.Pull = true
	if _, err := r.Image(ctx, spec.ImageRef{Ref: tag.String()}, "arm64"); err == nil {
		t.Fatal("--pull of a tag did not contact the (stopped) registry")
	}
	if _, err := r.Image(ctx, spec.ImageRef{Ref: byDigest}, "arm64"); err != nil {
		t.Fatalf("a cached digest reference needs no registry even with --pull: %v", err)
	}
}

func readAllLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// corruptingHandler serves reg, but replaces the body of one blob.
type corruptingHandler struct {
	reg    http.Handler
	digest string
}

func (h corruptingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+h.digest) {
		rec := &bodyRecorder{header: http.Header{}}
		h.reg.ServeHTTP(rec, r)
		body := bytes.Clone(rec.body.Bytes())
		if len(body) > 0 {
			body[len(body)/2] ^= 0xff
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		w.Write(body)
		return
	}
	h.reg.ServeHTTP(w, r)
}

type bodyRecorder struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (b *bodyRecorder) Header() http.Header         { return b.header }
func (b *bodyRecorder) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bodyRecorder) WriteHeader(code int)        { b.code = code }

func TestRegistryBlobWithWrongDigestIsRefused(t *testing.T) {
	img := platformImage(t, "amd64")
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	host, _ := serve(t, corruptingHandler{reg: newRegistry(), digest: ld.String()})
	tag, _ := name.NewTag(host + "/keel/bad:v1")
	// Push through a clean path: the corruption is only on reads.
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	r := newResolver(t)
	_, err := r.Image(context.Background(), spec.ImageRef{Ref: tag.String()}, "amd64")
	if err == nil {
		t.Fatal("a corrupted blob was accepted")
	}
	if !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), ld.String()) {
		t.Fatalf("error does not say what was wrong: %v", err)
	}
	// Nothing of it may be served from the cache afterwards.
	if _, err := r.Cache.Image(tag.String() + " linux/amd64"); err == nil {
		t.Fatal("the refused image was recorded in the cache")
	}
}

func TestRegistryRefusesWrongPlatform(t *testing.T) {
	host, _ := serve(t, newRegistry())
	tag, _ := name.NewTag(host + "/keel/single:v1")
	if err := remote.Write(tag, platformImage(t, "amd64")); err != nil {
		t.Fatal(err)
	}
	_, err := newResolver(t).Image(context.Background(), spec.ImageRef{Ref: tag.String()}, "arm64")
	if err == nil || !strings.Contains(err.Error(), "not linux/arm64") {
		t.Fatalf("an amd64-only image was used for arm64: %v", err)
	}
}

func writeLayout(t *testing.T) (string, map[string]v1.Image) {
	t.Helper()
	idx, imgs := twoPlatformIndex(t)
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	return dir, imgs
}

func TestLayoutDirectoryPicksPlatform(t *testing.T) {
	dir, imgs := writeLayout(t)
	r := newResolver(t)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := r.Image(context.Background(), spec.ImageRef{Ref: dir}, arch)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := digestOf(t, img), digestOf(t, imgs[arch]); got != want {
			t.Fatalf("%s: digest %s, want %s", arch, got, want)
		}
	}
	if _, err := r.Image(context.Background(), spec.ImageRef{Ref: dir}, "riscv64"); err == nil ||
		!strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Fatalf("missing platform: %v", err)
	}
}

func TestLayoutBlobWithWrongDigestIsRefused(t *testing.T) {
	dir, imgs := writeLayout(t)
	layers, _ := imgs["arm64"].Layers()
	ld, _ := layers[1].Digest()
	blob := filepath.Join(dir, "blobs", "sha256", ld.Hex)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = newResolver(t).Image(context.Background(), spec.ImageRef{Ref: dir}, "arm64")
	if err == nil || !strings.Contains(err.Error(), ld.String()) {
		t.Fatalf("corrupted layout blob: %v", err)
	}
}

// tarDir writes dir's files as an OCI archive.
func tarDir(t *testing.T, dir, dst string) {
	t.Helper()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(out)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		hdr, _ := tar.FileInfoHeader(info, "")
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			_, err = tw.Write(data)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

func TestArchives(t *testing.T) {
	ctx := context.Background()
	dir, imgs := writeLayout(t)
	ociTar := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, dir, ociTar)
	r := newResolver(t)
	img, err := r.Image(ctx, spec.ImageRef{Ref: ociTar}, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digestOf(t, img), digestOf(t, imgs["arm64"]); got != want {
		t.Fatalf("OCI archive: digest %s, want %s", got, want)
	}
	// The image must outlive the temporary unpacking of the archive.
	if err := readAllLayers(img); err != nil {
		t.Fatal(err)
	}

	dockerTar := filepath.Join(t.TempDir(), "docker.tar")
	tag, _ := name.NewTag("keel.test/x:1")
	if err := tarball.WriteToFile(dockerTar, tag, imgs["amd64"]); err != nil {
		t.Fatal(err)
	}
	img, err = r.Image(ctx, spec.ImageRef{Ref: dockerTar}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if got := archOf(t, img); got != "linux/amd64" {
		t.Fatalf("docker archive: %s", got)
	}
	if _, err := r.Image(ctx, spec.ImageRef{Ref: dockerTar}, "arm64"); err == nil {
		t.Fatal("docker archive of amd64 accepted for arm64")
	}
}

func TestLocalDirectoryWithoutImageIsAnError(t *testing.T) {
	_, err := newResolver(t).Image(context.Background(), spec.ImageRef{Ref: t.TempDir()}, "amd64")
	if err == nil || !strings.Contains(err.Error(), "neither a package.toml nor an OCI image layout") {
		t.Fatalf("got %v", err)
	}
}

func TestLocalPackageDirectoryIsBuilt(t *testing.T) {
	dir := t.TempDir()
	toml := "name = \"motd\"\n\n[[file]]\npath = \"/etc/motd\"\ncontents = \"hi\\n\"\n"
	if err := os.WriteFile(filepath.Join(dir, "package.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newResolver(t)
	r.Packages = &pkgbuild.Builder{Cache: r.Cache}
	if _, err := r.Image(context.Background(), spec.ImageRef{Ref: "./missing", Dir: dir}, "arm64"); err == nil {
		t.Fatal("a missing directory was accepted")
	}
	img, err := r.Image(context.Background(), spec.ImageRef{Ref: "./" + filepath.Base(dir), Dir: filepath.Dir(dir)}, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if got := archOf(t, img); got != "linux/arm64" {
		t.Fatalf("got %s", got)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Labels[imagelabel.Package] != "motd" {
		t.Fatalf("labels %v", cf.Config.Labels)
	}
}
