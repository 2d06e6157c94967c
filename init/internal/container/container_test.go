package container

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/init/internal/reaper"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/runtimeconfig"
	"github.com/keelos/keel/internal/seccomp"
	"github.com/keelos/keel/internal/spec"
)

var probe string // the static probe binary

func TestMain(m *testing.M) {
	ChildMain()
	dir, err := os.MkdirTemp("", "keel-probe")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	probe = filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", probe, "./testdata/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building probe: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cgroup2Mount finds the host's cgroup2 mount, or mounts one.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && unix.Access(fields[4], unix.W_OK) == nil {
				return fields[4]
			}
		}
	}
	dir := t.TempDir()
	if err := unix.Mount("cgroup2", dir, "cgroup2", 0, ""); err != nil {
		t.Fatalf("no writable cgroup2 and cannot mount one: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

type result struct {
	out    map[string]string
	status reaper.Status
	proc   *Process
	err    error
}

// runProbe writes a bundle running the probe with cfg and returns what
// the probe reported.
// Like the builder, it compiles the default seccomp profile (unless cfg
// says unconfined) beside config.json; edits may then change the
// document.
func runProbe(t *testing.T, name string, cfg spec.Config, edits ...func(*specs.Spec)) result {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, layout.BundleRootfs)
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "probe"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if cfg.Command == nil {
		cfg.Command = []string{"probe"}
	}
	s, err := runtimeconfig.Generate(name, layout.KindService, cfg, v1.Config{Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Annotations[layout.AnnotationSeccomp] == layout.SeccompDefault {
		prog, err := seccomp.Compile(seccomp.Default(), runtime.GOARCH, s.Process.Capabilities.Bounding)
		if err != nil {
			t.Fatal(err)
		}
		runtimeconfig.SetSeccompProgram(s, prog)
		if err := os.WriteFile(filepath.Join(bundle, layout.BundleSeccomp), prog, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, edit := range edits {
		edit(s)
	}
	mount := cgroup2Mount(t)
	s.Linux.CgroupsPath = fmt.Sprintf("/keel-test-%d/%s", os.Getpid(), name)
	t.Cleanup(func() {
		RemoveCgroup(filepath.Join(mount, s.Linux.CgroupsPath))
		RemoveCgroup(filepath.Join(mount, filepath.Dir(s.Linux.CgroupsPath)))
	})
	js, err := runtimeconfig.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, layout.BundleConfig), js, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Load(bundle)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rp := reaper.New(false, nil)
	var res result
	_, done, err := rp.Spawn(func() (int, error) {
		p, err := b.Start(Options{CgroupMount: mount, RunDir: t.TempDir(), Stdout: w, Stderr: w})
		res.proc = p
		if p == nil {
			return 0, err
		}
		return p.Pid, err
	})
	w.Close()
	res.err = err
	outc := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); outc <- string(b) }()
	if done != nil {
		select {
		case res.status = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("container did not exit")
		}
	}
	out := <-outc
	res.out = map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			res.out[k] = v
		}
	}
	if res.err == nil && res.status.Code() != 0 {
		t.Fatalf("probe: %v; output:\n%s", res.status, out)
	}
	return res
}

func ptr[T any](v T) *T { return &v }

func TestContainerIsolationAsConfigured(t *testing.T) {
	hostData := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostData, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runProbe(t, "isolated", spec.Config{
		Hostname:       ptr("probe-host"),
		Capabilities:   capList("CAP_NET_ADMIN", "CAP_CHOWN"),
		Readonly:       ptr(true),
		UID:            ptr(uint32(0)),
		Binds:          []string{hostData + ":/bound:ro"},
		Resources:      &spec.Resources{Memory: spec.MustParse[spec.Size]("48MiB"), Pids: ptr(int64(64))},
		Env:            []string{"PROBE=yes"},
		Cwd:            ptr("/tmp"),
		AdditionalGIDs: []uint32{7},
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	o := res.out
	check := func(key, want string) {
		t.Helper()
		if o[key] != want {
			t.Errorf("%s = %q, want %q", key, o[key], want)
		}
	}
	check("pid", "1")
	check("hostname", "probe-host")
	// CAP_CHOWN is bit 0, CAP_NET_ADMIN bit 12.
	check("CapEff", "0000000000001001")
	check("CapBnd", "0000000000001001")
	check("CapAmb", "0000000000000000")
	check("rootwrite", "false")
	check("bind", "from the host")
	check("env", "yes")
	check("cwd", "/tmp")
	check("groups", "[7]")
	check("devnull", "true")
	// The cgroup namespace is rooted at the container's own group.
	check("cgroup", "0::/")
	memMax := filepath.Join(res.proc.Cgroup, "memory.max")
	if b, err := os.ReadFile(memMax); err == nil {
		if got := strings.TrimSpace(string(b)); got != fmt.Sprint(48<<20) {
			t.Errorf("memory.max = %s, want %d", got, 48<<20)
		}
	} else {
		// This host binds the memory controller to cgroup v1, so cgroup2
		// cannot offer it: the runtime must say the limit was not applied.
		found := false
		for _, w := range res.proc.Warnings {
			found = found || strings.Contains(w, "memory.max")
		}
		if !found {
			t.Errorf("no memory.max (%v) and no warning about it: %q", err, res.proc.Warnings)
		}
		t.Logf("memory controller unavailable on this host's cgroup2: %q", res.proc.Warnings)
	}
}

func TestContainerUIDAndNoCapabilities(t *testing.T) {
	res := runProbe(t, "user", spec.Config{UID: ptr(uint32(1234)), GID: ptr(uint32(4321)), NoNewPrivileges: ptr(true), Pid: ptr("host")})
	if res.err != nil {
		t.Fatal(res.err)
	}
	for k, want := range map[string]string{"uid": "1234", "gid": "4321", "CapEff": "0000000000000000", "CapPrm": "0000000000000000", "NoNewPrivs": "1"} {
		if res.out[k] != want {
			t.Errorf("%s = %q, want %q", k, res.out[k], want)
		}
	}
	if res.out["pid"] == "1" {
		t.Error("pid = host's namespace was asked, but the probe is PID 1")
	}
}

func TestContainerWritableRootIsOverlay(t *testing.T) {
	res := runProbe(t, "writable", spec.Config{Command: []string{"/bin/probe", "arg1"}})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.out["rootwrite"] != "true" || res.out["arg"] != "arg1" {
		t.Errorf("rootwrite = %q arg = %q, want true, arg1", res.out["rootwrite"], res.out["arg"])
	}
}

func TestContainerStartErrorReported(t *testing.T) {
	res := runProbe(t, "missing", spec.Config{Command: []string{"/bin/nope"}})
	if res.err == nil || !strings.Contains(res.err.Error(), "/bin/nope") {
		t.Errorf("err = %v, want one naming /bin/nope", res.err)
	}
}

// TestContainerSharedBindPropagatesMounts checks that a file system a
// container mounts under an rshared bind appears on the host, as the
// mount service's data disk must, and that under a plain bind it does not.
func TestContainerSharedBindPropagatesMounts(t *testing.T) {
	host := t.TempDir()
	if err := unix.Mount("tmpfs", host, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(host, unix.MNT_DETACH) })
	if err := unix.Mount("", host, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bind       string
		propagates bool
	}{
		{":/shared:rshared", true},
		{":/shared", false},
	} {
		sub := filepath.Join(host, fmt.Sprint(tc.propagates))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		res := runProbe(t, "shared-"+fmt.Sprint(tc.propagates), spec.Config{
			Binds:        []string{host + tc.bind},
			Capabilities: capList("CAP_SYS_ADMIN"),
			Env:          []string{"PROBE_MOUNT=/shared/" + filepath.Base(sub)},
		})
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.out["mount"] != "<nil>" {
			t.Fatalf("bind %s: mount in the container: %s", tc.bind, res.out["mount"])
		}
		mounted := isMountpoint(t, sub)
		if mounted {
			unix.Unmount(sub, unix.MNT_DETACH)
		}
		if mounted != tc.propagates {
			t.Errorf("bind %s: the container's mount reached the host: %v, want %v", tc.bind, mounted, tc.propagates)
		}
	}
}

func isMountpoint(t *testing.T, p string) bool {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(mi)) {
		if f := strings.Fields(l); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

// TestContainerSeccomp checks the filter init installs from the bundle:
// the default profile refuses keyctl even with CAP_SYS_ADMIN, whether
// installed before dropping credentials or, with no_new_privs, after;
// unconfined has no filter.
func TestContainerSeccomp(t *testing.T) {
	for _, c := range []struct {
		name               string
		cfg                spec.Config
		seccomp, keyctl    string
		noNewPrivs, capEff string
	}{
		{"admin", spec.Config{Capabilities: capList("CAP_SYS_ADMIN")}, "2", "operation not permitted", "0", "0000000000200000"},
		{"user-nnp", spec.Config{UID: ptr(uint32(1000)), NoNewPrivileges: ptr(true)}, "2", "operation not permitted", "1", "0000000000000000"},
		{"unconfined", spec.Config{Capabilities: capList("CAP_SYS_ADMIN"), Seccomp: ptr("unconfined")}, "0", "errno 0", "0", "0000000000200000"},
	} {
		c.cfg.Env = []string{"PROBE_KEYCTL=1"}
		res := runProbe(t, "seccomp-"+c.name, c.cfg)
		if res.err != nil {
			t.Fatalf("%s: %v", c.name, res.err)
		}
		for k, want := range map[string]string{"Seccomp": c.seccomp, "keyctl": c.keyctl, "NoNewPrivs": c.noNewPrivs, "CapEff": c.capEff} {
			if got := res.out[k]; got != want {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got, want)
			}
		}
	}
}

func TestContainerSeccompProgramMustMatch(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(s *specs.Spec)
		want string
	}{
		{"other digest", func(s *specs.Spec) {
			runtimeconfig.SetSeccompProgram(s, []byte("another program"))
		}, "config.json wants"},
		{"no digest", func(s *specs.Spec) {
			delete(s.Annotations, layout.AnnotationSeccompSHA256)
		}, "config.json has no " + layout.AnnotationSeccompSHA256},
	} {
		res := runProbe(t, "tampered-"+strings.ReplaceAll(c.name, " ", "-"), spec.Config{}, c.edit)
		if res.err == nil || !strings.Contains(res.err.Error(), c.want) || res.proc != nil {
			t.Errorf("%s: err = %v, process %v; want no start and an error containing %q", c.name, res.err, res.proc, c.want)
		}
	}
}

// TestContainerSysctlInOwnNamespace checks that a net.* sysctl reaches the
// container's own network namespace, not the host's.
func TestContainerSysctlInOwnNamespace(t *testing.T) {
	const forward = "/proc/sys/net/ipv4/ip_forward"
	before, err := os.ReadFile(forward)
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(before)) == "1" {
		want = "0"
	}
	res := runProbe(t, "sysctl", spec.Config{Sysctl: map[string]string{"net.ipv4.ip_forward": want}, Env: []string{"PROBE_READ=" + forward}})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.out["read"] != want {
		t.Errorf("ip_forward in the container = %q, want %s", res.out["read"], want)
	}
	if after, _ := os.ReadFile(forward); !bytes.Equal(after, before) {
		t.Errorf("the host's ip_forward changed from %q to %q", before, after)
	}
}

// TestContainerRefusesHostSysctls checks init's own check, behind the
// builder's: a config.json asking for a sysctl outside the container's
// namespaces fails to start, and the host's value stays.
func TestContainerRefusesHostSysctls(t *testing.T) {
	hostNet := fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	// Each value differs from the host's and is one the kernel takes.
	forward := "1"
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) == "1" {
		forward = "0"
	}
	for _, c := range []struct {
		name, key, value, file, want string
		cfg                          spec.Config
	}{
		{"core-pattern", "kernel.core_pattern", "|/bin/probe", "/proc/sys/kernel/core_pattern", "sysctl kernel.core_pattern: not namespaced", spec.Config{}},
		{"host-net", "net.ipv4.ip_forward", forward, "/proc/sys/net/ipv4/ip_forward", "sysctl net.ipv4.ip_forward: the container shares the host's network namespace", spec.Config{Net: ptr("host")}},
		{"host-ipc", "kernel.shmmni", "4097", "/proc/sys/kernel/shmmni", "sysctl kernel.shmmni: the container shares the host's ipc namespace", spec.Config{Ipc: ptr("host")}},
		{"joined-host-net", "net.ipv4.ip_forward", forward, "/proc/sys/net/ipv4/ip_forward", "sysctl net.ipv4.ip_forward: the container's network namespace is the host's", spec.Config{Net: ptr(hostNet)}},
	} {
		before, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(before)) == c.value {
			t.Fatalf("%s: the host's %s is %s already", c.name, c.key, c.value)
		}
		res := runProbe(t, c.name, c.cfg, func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{c.key: c.value}
		})
		if res.err == nil || !strings.Contains(res.err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, res.err, c.want)
		}
		if after, _ := os.ReadFile(c.file); !bytes.Equal(after, before) {
			t.Errorf("%s: the host's %s changed from %q to %q", c.name, c.key, before, after)
			os.WriteFile(c.file, before, 0) // put the machine back
		}
	}
}

func capList(names ...string) []spec.Capability {
	var out []spec.Capability
	for _, n := range names {
		out = append(out, spec.MustParse[spec.Capability](n))
	}
	return out
}
