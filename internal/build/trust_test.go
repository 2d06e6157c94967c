package build

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ocilayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/imageread/imagetest"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/spec"
)

// The tests here build real images: a kernel image and service images
// as OCI layout directories, images with hostile labels pushed to
// go-containerregistry's registry on loopback, and local packages.

// corePattern is the label that escaped to the host: a service with no
// capability and no-new-privileges asking init to write core_pattern.
const corePattern = `{"sysctl":{"kernel.core_pattern":"|/containers/services/evil/rootfs/pwn %P"},"capabilities":[],"no-new-privileges":true}`

// privileged is a label granting itself the host.
const privileged = `{"capabilities":["all"],"pid":"host","net":"host","binds":["/:/host:rw,rshared"],"devices":[{"path":"/dev/*"}]}`

// layerOf is an image layer holding files (path → content), with their
// parent directories.
func layerOf(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	tree, err := imagetest.Tree(t.TempDir(), files)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tree.WriteTar(&buf, epoch.Default()); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf is a linux/amd64 image of one layer with config c.
func imageOf(t *testing.T, files map[string]string, c v1.Config) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layerOf(t, files))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", c
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// appImage is a service image: a program and the label, if any.
func appImage(t *testing.T, label, user string) v1.Image {
	t.Helper()
	c := v1.Config{Cmd: []string{"/bin/app"}, User: user, Env: []string{"APP=1"}}
	if label != "" {
		c.Labels = map[string]string{imagelabel.Config: label}
	}
	return imageOf(t, map[string]string{"bin/app": "#!/bin/sh\necho app\n"}, c)
}

func writeLayout(t *testing.T, dir string, img v1.Image) {
	t.Helper()
	lp, err := ocilayout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
}

// startRegistry serves a registry on loopback and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// trustSpec writes a spec with a (fake) kernel image and the given
// service entries, and returns its path.
func trustSpec(t *testing.T, dir, services string) string {
	t.Helper()
	kernel := filepath.Join(dir, "kernel")
	if _, err := os.Stat(kernel); err != nil {
		writeLayout(t, kernel, imageOf(t, map[string]string{
			"kernel": "not really a kernel", "lib/modules/6.1.0-test/modules.builtin": "",
		}, v1.Config{}))
	}
	p := filepath.Join(dir, "build.toml")
	doc := "name = \"trust\"\narch = [\"amd64\"]\n\n[kernel]\nimage = \"./kernel\"\n\n" + services + "\n[output]\nformats = [\"tar\"]\n"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// buildSpec builds the spec into dir/out with a cache of its own and
// returns the error.
func buildSpec(t *testing.T, specFile string, cache string) error {
	t.Helper()
	_, err := Run(context.Background(), Options{Specs: []string{specFile}, Dir: filepath.Join(filepath.Dir(specFile), "out"), CacheDir: cache})
	return err
}

// configJSON reads a container's config.json from the tar output.
func configJSON(t *testing.T, specFile, container string) *specs.Spec {
	t.Helper()
	f, err := os.Open(filepath.Join(filepath.Dir(specFile), "out", "trust-amd64.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s/config.json in the output: %v", container, err)
		}
		if strings.TrimPrefix(h.Name, "./") == container+"/config.json" {
			var s specs.Spec
			if err := json.NewDecoder(tr).Decode(&s); err != nil {
				t.Fatal(err)
			}
			return &s
		}
	}
}

func TestCorePatternLabelIsRefused(t *testing.T) {
	host := startRegistry(t)
	ref := push(t, host+"/evil:1", appImage(t, corePattern, "1000"))
	// Even allowing every privilege does not let a container set a host
	// sysctl.
	for _, allow := range []string{"", "allow-image-privileges = [\"all\"]\n"} {
		dir := t.TempDir()
		f := trustSpec(t, dir, "[[service]]\nname = \"evil\"\nimage = \""+ref+"\"\n"+allow)
		err := buildSpec(t, f, t.TempDir())
		want := `service "evil": image ` + ref + ` (registry) label org.keel.config:1:34: sysctl.kernel.core_pattern: "kernel.core_pattern" is a host sysctl`
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pkg/sysctl") {
			t.Fatalf("%s: got %v\nwant an error containing %s", allow, err, want)
		}
		var es spec.Errors
		if !errors.As(err, &es) {
			t.Errorf("not spec.Errors: %T", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "out", "trust-amd64.tar")); err == nil {
			t.Error("the refused build wrote an output")
		}
	}
}

func TestPrivilegedLabelNeedsTheSpecsAllowance(t *testing.T) {
	host := startRegistry(t)
	img := appImage(t, privileged, "")
	layoutDir := t.TempDir()
	writeLayout(t, layoutDir, img)
	for _, ref := range []string{push(t, host+"/evil:1", img), layoutDir} {
		origin := "registry"
		if ref == layoutDir {
			origin = "OCI layout directory"
		}
		dir := t.TempDir()
		f := trustSpec(t, dir, "[[service]]\nname = \"evil\"\nimage = \""+ref+"\"\n")
		err := buildSpec(t, f, t.TempDir())
		want := `amd64: service "evil": image ` + ref + ` (` + origin + `) is not the spec's own source, and its label org.keel.config sets ` +
			`capabilities = ["all"], net = "host", pid = "host", binds = ["/:/host:rw,rshared"], devices = [{ path = "/dev/*" }], ` +
			`which would widen the container's privileges: to grant them, add allow-image-privileges = ["capabilities", "net", "pid", "binds", "devices"] ` +
			`to the [[service]] entry named "evil" in ` + f + ` (or set them in that entry yourself)`
		if err == nil || err.Error() != want {
			t.Fatalf("%s:\n got %v\nwant %s", ref, err, want)
		}

		// Allowed, the label is applied.
		f = trustSpec(t, dir, "[[service]]\nname = \"evil\"\nimage = \""+ref+"\"\nallow-image-privileges = [\"capabilities\", \"net\", \"pid\", \"binds\", \"devices\"]\n")
		if err := buildSpec(t, f, t.TempDir()); err != nil {
			t.Fatalf("%s: allowed: %v", ref, err)
		}
		s := configJSON(t, f, "containers/services/evil")
		if got := len(s.Process.Capabilities.Bounding); got != len(layout.Capabilities()) {
			t.Errorf("%s: %d capabilities, want all %d", ref, got, len(layout.Capabilities()))
		}
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.PIDNamespace || ns.Type == specs.NetworkNamespace {
				t.Errorf("%s: has its own %s namespace, want the host's", ref, ns.Type)
			}
		}
		if !slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Source == "/" && m.Destination == "/host" }) {
			t.Errorf("%s: no bind of / at /host in %v", ref, s.Mounts)
		}
		if !strings.Contains(s.Annotations[layout.AnnotationDevices], `"/dev/*"`) {
			t.Errorf("%s: devices %q", ref, s.Annotations[layout.AnnotationDevices])
		}
	}
}

// A key the spec entry sets itself overrides the label and needs no
// allowance; what widens nothing needs none either.
func TestSpecEntryOverridesUntrustedLabel(t *testing.T) {
	host := startRegistry(t)
	ref := push(t, host+"/evil:1", appImage(t, privileged, ""))
	dir := t.TempDir()
	f := trustSpec(t, dir, "[[service]]\nname = \"evil\"\nimage = \""+ref+"\"\n"+
		"capabilities = [\"NET_BIND_SERVICE\"]\nnet = \"new\"\npid = \"new\"\nbinds = []\ndevices = []\n")
	if err := buildSpec(t, f, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	s := configJSON(t, f, "containers/services/evil")
	if got := s.Process.Capabilities.Bounding; !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("capabilities %v", got)
	}
	if slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/host" }) {
		t.Error("the label's bind was applied")
	}
}

// badLabels are single-key label values the spec refuses, and the
// message each gives (after the image and label).
var badLabels = []struct{ label, want string }{
	{`{"env":["1BAD=x"]}`, `:1:9: env: "1BAD=x" is not KEY=value`},
	{`{"cwd":"../.."}`, `:1:8: cwd: "../.." is not an absolute path`},
	{`{"restart":"sometimes"}`, `:1:12: restart: unknown restart policy "sometimes"`},
	{`{"hostname":"bad_host!"}`, `:1:13: hostname: "bad_host!" is not a valid host name`},
	{`{"oom-score-adj":-99999}`, `:1:18: oom-score-adj: -99999 is outside -1000..1000`},
	{`{"runtime":{"mkdir":["../../etc/evil"]}}`, `:1:22: runtime.mkdir: "../../etc/evil" is not an absolute path`},
	{`{"sysctl":{"vm.overcommit_memory":"1"}}`, `:1:35: sysctl.vm.overcommit_memory: "vm.overcommit_memory" is a host sysctl`},
	{`{"capabilities":["CAP_SYS_ADMN"]}`, `:1:18: capabilities: unknown capability "CAP_SYS_ADMN"; did you mean "CAP_SYS_ADMIN"?`},
	{`{"binds":["/a:/b:rshard"]}`, `:1:11: binds: bind "/a:/b:rshard": unknown option "rshard"; did you mean "rshared"?`},
	{`{"mounts":[{"type":"proc","destination":"proc"}]}`, `:1:41: mounts[proc].destination: "proc" is not an absolute path`},
	{`{"devices":[{"path":"/etc/shadow"}]}`, `:1:21: devices[/etc/shadow].path: "/etc/shadow" is not a path under /dev/`},
	{`{"rlimits":["nofile,10,2"]}`, `:1:13: rlimits: rlimit "nofile,10,2": soft limit above hard limit`},
	{`{"tmpfs":["/tmp:exec,dax"]}`, `:1:11: tmpfs: tmpfs "/tmp:exec,dax": unknown option "dax"`},
	{`{"uid":4294967296}`, `:1:8: uid: integer out of range (0 to 4294967295)`},
}

// Each bad value is refused with a spec-style message, even with every
// privilege allowed.
func TestBadLabelValuesAreRefused(t *testing.T) {
	host := startRegistry(t)
	cache := t.TempDir()
	for i, c := range badLabels {
		ref := push(t, host+"/bad:"+string(rune('a'+i)), appImage(t, c.label, ""))
		f := trustSpec(t, t.TempDir(), "[[service]]\nname = \"bad\"\nimage = \""+ref+"\"\nallow-image-privileges = [\"all\"]\n")
		err := buildSpec(t, f, cache)
		want := `amd64: service "bad": image ` + ref + ` (registry) label org.keel.config` + c.want
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", c.label, err, want)
		}
	}
}

// The image's own config becomes the container's env, cwd, user and
// command, so it is checked by the same rules.
func TestBadImageConfigIsRefused(t *testing.T) {
	host := startRegistry(t)
	for i, c := range []struct {
		config v1.Config
		want   string
	}{
		{v1.Config{Cmd: []string{"/bin/app"}, Env: []string{"1BAD=x"}}, `config: Env: "1BAD=x" is not KEY=value`},
		{v1.Config{Cmd: []string{"/bin/app"}, WorkingDir: "../.."}, `config: WorkingDir: "../.." is not an absolute path`},
		{v1.Config{Cmd: []string{"/bin/app"}, User: "0:0:0"}, `config: User: "0:0:0" is not USER[:GROUP]`},
		{v1.Config{Entrypoint: []string{""}, Cmd: []string{"x"}}, `config: Entrypoint: empty program name`},
	} {
		ref := push(t, host+"/badcfg:"+string(rune('a'+i)), imageOf(t, map[string]string{"bin/app": "x"}, c.config))
		f := trustSpec(t, t.TempDir(), "[[service]]\nname = \"bad\"\nimage = \""+ref+"\"\n")
		err := buildSpec(t, f, t.TempDir())
		want := `amd64: service "bad": image ` + ref + ` (registry) ` + c.want
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("got %v\nwant %s", err, want)
		}
	}
}

// trustedPackage writes a package directory whose [config] grants
// itself privileges, as keel's own packages do.
func trustedPackage(t *testing.T, dir string) {
	t.Helper()
	pkg := filepath.Join(dir, "pkg", "admin")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := `name = "admin"

[[file]]
path = "/bin/admin"
contents = "#!/bin/sh\n"
mode = "0755"

[config]
command = ["/bin/admin"]
capabilities = ["all"]
net = "host"
pid = "host"
binds = ["/dev:/dev", "/run:/run:rshared"]
devices = [{ path = "/dev/tty*", permissions = "rwm" }]
oom-score-adj = -500
sysctl = { "kernel.shmmax" = "4096" }
`
	if err := os.WriteFile(filepath.Join(pkg, "package.toml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTrustedPackageKeepsItsPrivileges(t *testing.T) {
	dir := t.TempDir()
	trustedPackage(t, dir)
	f := trustSpec(t, dir, "[[service]]\nname = \"admin\"\nimage = \"./pkg/admin\"\n")
	if err := buildSpec(t, f, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	s := configJSON(t, f, "containers/services/admin")
	if got := len(s.Process.Capabilities.Bounding); got != len(layout.Capabilities()) {
		t.Errorf("%d capabilities, want all", got)
	}
	if *s.Process.OOMScoreAdj != -500 || s.Linux.Sysctl["kernel.shmmax"] != "4096" {
		t.Errorf("oom %d sysctl %v", *s.Process.OOMScoreAdj, s.Linux.Sysctl)
	}
	if !slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Source == "/run" && slices.Contains(m.Options, "rshared") }) {
		t.Errorf("no rshared bind of /run in %v", s.Mounts)
	}
}

// The sysctl rule holds on the effective configuration: the package's
// net = "host" and the spec entry's net.* sysctl make a host sysctl.
func TestSysctlCheckedOnEffectiveConfig(t *testing.T) {
	dir := t.TempDir()
	trustedPackage(t, dir)
	f := trustSpec(t, dir, "[[service]]\nname = \"admin\"\nimage = \"./pkg/admin\"\nsysctl = { \"net.ipv4.ip_forward\" = \"1\" }\n")
	err := buildSpec(t, f, t.TempDir())
	want := `amd64: service "admin": sysctl: "net.ipv4.ip_forward" needs the container's own net namespace, but net = "host": give the container net = "new", or set host sysctls with the sysctl onboot package (pkg/sysctl)`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	f = trustSpec(t, dir, "[[service]]\nname = \"admin\"\nimage = \"./pkg/admin\"\nnet = \"new\"\nsysctl = { \"net.ipv4.ip_forward\" = \"1\" }\n")
	if err := buildSpec(t, f, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if s := configJSON(t, f, "containers/services/admin"); s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Errorf("sysctl %v", s.Linux.Sysctl)
	}
}

func TestDryRunShowsEffectiveConfigAndOrigins(t *testing.T) {
	dir := t.TempDir()
	trustedPackage(t, dir)
	host := startRegistry(t)
	ref := push(t, host+"/evil:1", appImage(t, privileged, "1000"))
	f := trustSpec(t, dir, "[[service]]\nname = \"admin\"\nimage = \"./pkg/admin\"\nenv = [\"A=1\"]\n\n"+
		"[[service]]\nname = \"evil\"\nimage = \""+ref+"\"\nallow-image-privileges = [\"all\"]\nnet = \"new\"\n")
	var out bytes.Buffer
	if _, err := Run(context.Background(), Options{Specs: []string{f}, DryRun: true, CacheDir: t.TempDir(), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, line := range []string{
		"# amd64 service \"admin\": image \"./pkg/admin\" (package directory; its label is trusted)\n",
		"#   command = [\"/bin/admin\"]  # package [config]\n",
		"#   env = [\"PATH=" + layout.DefaultPath + "\", \"A=1\"]  # spec plus keel's default PATH\n",
		"#   capabilities = [\"all\"]  # package [config]\n",
		"#   devices = [{ path = \"/dev/tty*\", permissions = \"rwm\" }]  # package [config]\n",
		"#   uid = 0  # keel's default\n",
		"# amd64 service \"evil\": image \"" + ref + "\" (registry; its label is untrusted)\n",
		"#   command = [\"/bin/app\"]  # image config\n",
		"#   env = [\"PATH=" + layout.DefaultPath + "\", \"APP=1\"]  # image config plus keel's default PATH\n",
		"#   capabilities = [\"all\"]  # image label (untrusted; allowed by allow-image-privileges)\n",
		"#   net = \"new\"  # spec\n",
		"#   pid = \"host\"  # image label (untrusted; allowed by allow-image-privileges)\n",
		"#   uid = 1000  # image config\n",
		"#   cwd = \"/\"  # keel's default\n",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
	// The output is still a spec, and loads back to the same one.
	again := filepath.Join(dir, "again.toml")
	if err := os.WriteFile(again, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s1, err := spec.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := spec.Load(again)
	if err != nil {
		t.Fatalf("dry-run output does not load: %v", err)
	}
	if b1, b2 := mustMarshal(t, s1), mustMarshal(t, s2); !bytes.Equal(b1, b2) {
		t.Errorf("dry-run output loads as another spec:\n%s\nwant:\n%s", b2, b1)
	}
	// A refused label fails the dry run as it fails the build.
	f = trustSpec(t, dir, "[[service]]\nname = \"evil\"\nimage = \""+ref+"\"\n")
	out.Reset()
	if _, err := Run(context.Background(), Options{Specs: []string{f}, DryRun: true, CacheDir: t.TempDir(), Stdout: &out}); err == nil || !strings.Contains(err.Error(), "allow-image-privileges") {
		t.Fatalf("dry run of a refused label: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("a failed dry run printed:\n%s", out.String())
	}
}

func mustMarshal(t *testing.T, s *spec.Spec) []byte {
	t.Helper()
	b, err := spec.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
