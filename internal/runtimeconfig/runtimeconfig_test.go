package runtimeconfig

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/spec"
)

func ptr[T any](v T) *T { return &v }

func TestArgsFromCommandElseEntrypointAndCmd(t *testing.T) {
	img := v1.Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}}
	s, err := Generate("a", layout.KindService, spec.Config{}, img)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/sh", "-c", "echo hi"}; !reflect.DeepEqual(s.Process.Args, want) {
		t.Errorf("args = %q, want %q", s.Process.Args, want)
	}
	s, err = Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}}, img)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/x"}; !reflect.DeepEqual(s.Process.Args, want) {
		t.Errorf("args = %q, want %q", s.Process.Args, want)
	}
	if _, err := Generate("a", layout.KindService, spec.Config{}, v1.Config{}); err == nil {
		t.Error("no command and no entrypoint: want an error")
	}
}

func TestEnvImageThenSpecWithDefaultPath(t *testing.T) {
	s, err := Generate("a", layout.KindOnboot, spec.Config{Command: []string{"/x"}, Env: []string{"B=spec", "C=3"}},
		v1.Config{Env: []string{"A=1", "B=image"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=" + layout.DefaultPath, "A=1", "B=spec", "C=3"}
	if !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env = %q, want %q", s.Process.Env, want)
	}
	s, _ = Generate("a", layout.KindOnboot, spec.Config{Command: []string{"/x"}}, v1.Config{Env: []string{"PATH=/bin"}})
	if want := []string{"PATH=/bin"}; !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env = %q, want %q", s.Process.Env, want)
	}
}

func TestCapabilitiesExactlyConfigured(t *testing.T) {
	s, err := Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}}, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Process.Capabilities
	if len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Ambient)+len(c.Inheritable) != 0 {
		t.Errorf("default capabilities = %+v, want none", c)
	}
	s, err = Generate("a", layout.KindService, spec.Config{Command: []string{"/x"},
		Capabilities: caps("net_admin", "CAP_CHOWN"), Ambient: caps("CAP_NET_ADMIN")}, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c = s.Process.Capabilities
	want := []string{"CAP_CHOWN", "CAP_NET_ADMIN"}
	for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
		if !reflect.DeepEqual(set, want) {
			t.Errorf("set = %q, want %q", set, want)
		}
	}
	if !reflect.DeepEqual(c.Ambient, []string{"CAP_NET_ADMIN"}) || !reflect.DeepEqual(c.Inheritable, []string{"CAP_NET_ADMIN"}) {
		t.Errorf("ambient %q inheritable %q, want CAP_NET_ADMIN", c.Ambient, c.Inheritable)
	}
	s, _ = Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}, Capabilities: caps("all")}, v1.Config{})
	if len(s.Process.Capabilities.Bounding) != len(layout.Capabilities()) {
		t.Errorf("all = %d caps, want %d", len(s.Process.Capabilities.Bounding), len(layout.Capabilities()))
	}
}

func caps(names ...string) []spec.Capability {
	var out []spec.Capability
	for _, n := range names {
		out = append(out, spec.MustParse[spec.Capability](n))
	}
	return out
}

func TestNamespaces(t *testing.T) {
	s, err := Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}, Net: ptr("host"), Ipc: ptr("/run/ns/ipc")}, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.LinuxNamespace{{Type: "mount"}, {Type: "pid"}, {Type: "ipc", Path: "/run/ns/ipc"}, {Type: "uts"}, {Type: "cgroup"}}
	if !reflect.DeepEqual(s.Linux.Namespaces, want) {
		t.Errorf("namespaces = %+v, want %+v", s.Linux.Namespaces, want)
	}
	if s.Hostname != "a" {
		t.Errorf("hostname = %q, want the container name", s.Hostname)
	}
	// With the host's network, /sys is bound rather than mounted anew.
	if i := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys" }); s.Mounts[i].Type != "bind" {
		t.Errorf("/sys mount = %+v, want a bind", s.Mounts[i])
	}
	// A container runtime (containerd) reads its containers' cgroups from
	// /proc/PID/cgroup: it shares the host's cgroup namespace.
	s, err = Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}, Cgroup: ptr("host")}, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.CgroupNamespace }) {
		t.Errorf("cgroup = host: namespaces %+v include a new cgroup namespace", s.Linux.Namespaces)
	}
	if _, err := Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}, Pid: ptr("sideways")}, v1.Config{}); err == nil {
		t.Error("bad namespace value: want an error")
	}
}

func TestUserResourcesRlimitsAnnotations(t *testing.T) {
	cfg := spec.Config{
		Command: []string{"/x"}, UID: ptr(uint32(1000)), AdditionalGIDs: []uint32{5, 6},
		Readonly: ptr(true), OOMScoreAdj: ptr(-500),
		Resources: &spec.Resources{Memory: spec.MustParse[spec.Size]("64MiB"), CPU: spec.MustParse[spec.CPU]("0.5"), Pids: ptr(int64(20))},
		Rlimits:   []spec.Rlimit{spec.MustParse[spec.Rlimit]("nofile,1024,4096")},
		Restart:   ptr("on-failure"),
		Runtime:   &spec.Runtime{Mkdir: []string{"/var/lib/x"}},
		Sysctl:    map[string]string{"net.ipv4.ip_forward": "1"},
	}
	s, err := Generate("svc", layout.KindService, cfg, v1.Config{User: "7:8"})
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Process.User; u.UID != 1000 || u.GID != 8 || !reflect.DeepEqual(u.AdditionalGids, []uint32{5, 6}) {
		t.Errorf("user = %+v", u)
	}
	if !s.Root.Readonly || s.Root.Path != "rootfs" {
		t.Errorf("root = %+v", s.Root)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 20 {
		t.Errorf("resources = mem %d quota %d period %d pids %d", *r.Memory.Limit, *r.CPU.Quota, *r.CPU.Period, *r.Pids.Limit)
	}
	if want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}}; !reflect.DeepEqual(s.Process.Rlimits, want) {
		t.Errorf("rlimits = %+v", s.Process.Rlimits)
	}
	if s.Linux.CgroupsPath != "/keel/svc" {
		t.Errorf("cgroupsPath = %q", s.Linux.CgroupsPath)
	}
	a := s.Annotations
	if a[layout.AnnotationName] != "svc" || a[layout.AnnotationKind] != "service" || a[layout.AnnotationRestart] != "on-failure" || a[layout.AnnotationRuntime] != `{"mkdir":["/var/lib/x"]}` {
		t.Errorf("annotations = %v", a)
	}
	if *s.Process.OOMScoreAdj != -500 || s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Errorf("oom %d sysctl %v", *s.Process.OOMScoreAdj, s.Linux.Sysctl)
	}
	s, _ = Generate("ob", layout.KindOnboot, spec.Config{Command: []string{"/x"}}, v1.Config{})
	if s.Annotations[layout.AnnotationRestart] != "never" {
		t.Errorf("onboot restart = %q, want never", s.Annotations[layout.AnnotationRestart])
	}
}

// The runtime key reaches init as layout.Runtime, every field of it,
// encoded as the spec's own type was before the two were separate.
func TestRuntimeAnnotationIsTheWireType(t *testing.T) {
	cfg := spec.Config{Command: []string{"/x"}, Runtime: &spec.Runtime{
		Mkdir:      []string{"/run/a"},
		Interfaces: []spec.Interface{{Name: "eth1", Add: "veth", Peer: "veth-a", CreateInNS: true}, {Name: "eth2"}},
		BindNS:     &spec.BindNS{Net: "/run/ns/net", Pid: "/run/ns/pid", Ipc: "/run/ns/ipc", Uts: "/run/ns/uts", Mnt: "/run/ns/mnt", Cgroup: "/run/ns/cgroup"},
	}}
	s, err := Generate("a", layout.KindService, cfg, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"mkdir":["/run/a"],"interfaces":[{"name":"eth1","add":"veth","peer":"veth-a","create-in-ns":true},{"name":"eth2"}],` +
		`"bind-ns":{"net":"/run/ns/net","pid":"/run/ns/pid","ipc":"/run/ns/ipc","uts":"/run/ns/uts","mnt":"/run/ns/mnt","cgroup":"/run/ns/cgroup"}}`
	got := s.Annotations[layout.AnnotationRuntime]
	if got != want {
		t.Errorf("runtime annotation\n got %s\nwant %s", got, want)
	}
	var r layout.Runtime
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatal(err)
	}
	if r.BindNS == nil || r.BindNS.Cgroup != "/run/ns/cgroup" || len(r.Interfaces) != 2 || !r.Interfaces[0].CreateInNS || r.Mkdir[0] != "/run/a" {
		t.Errorf("decoded %+v", r)
	}
}

func TestMountsBindsTmpfsAndBoundPathsUnmasked(t *testing.T) {
	cfg := spec.Config{
		Command: []string{"/x"},
		Binds:   []string{"/var/log:/var/log:ro,rshared", "/proc/sys:/proc/sys"},
		Tmpfs:   []string{"/run:size=1m"},
		Mounts:  []spec.Mount{{Type: "overlay", Source: "overlay", Destination: "/m", Options: []string{"lowerdir=/a"}}},
	}
	s, err := Generate("a", layout.KindService, cfg, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(s.Mounts)
	got := s.Mounts[n-4:]
	want := []specs.Mount{
		{Destination: "/var/log", Type: "bind", Source: "/var/log", Options: []string{"rbind", "ro", "rshared"}},
		{Destination: "/proc/sys", Type: "bind", Source: "/proc/sys", Options: []string{"rbind"}},
		{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=1m"}},
		{Destination: "/m", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mounts = %+v\nwant %+v", got, want)
	}
	if slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("readonlyPaths %q still hold the bound /proc/sys", s.Linux.ReadonlyPaths)
	}
	if !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sysrq-trigger") || !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") {
		t.Errorf("runc defaults missing: %q %q", s.Linux.ReadonlyPaths, s.Linux.MaskedPaths)
	}
	if _, err := Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}, Binds: []string{"rel:/x"}}, v1.Config{}); err == nil {
		t.Error("relative bind source: want an error")
	}
	if _, err := Generate("a", layout.KindService, spec.Config{Command: []string{"/x"}, Binds: []string{"/a:/b:bogus"}}, v1.Config{}); err == nil {
		t.Error("unknown bind option: want an error")
	}
}

func TestDevices(t *testing.T) {
	cfg := spec.Config{Command: []string{"/x"}, Devices: []spec.Device{
		{Path: "/dev/kvm", Type: "c", Major: ptr(int64(10)), Minor: ptr(int64(232)), Mode: spec.MustParse[spec.FileMode]("0660")},
		{Path: "/dev/tty*"},
		{Path: "/dev/ttyS*", Mode: spec.MustParse[spec.FileMode]("0620"), Permissions: "rw"},
	}}
	s, err := Generate("a", layout.KindService, cfg, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Major != 10 || *s.Linux.Devices[0].FileMode != 0o660 {
		t.Errorf("devices = %+v", s.Linux.Devices)
	}
	last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	if !last.Allow || *last.Major != 10 || *last.Minor != 232 || last.Access != "rwm" {
		t.Errorf("last device rule = %+v", last)
	}
	// init resolves these on the machine; their mode travels as a number.
	if s.Annotations[layout.AnnotationDevices] != `[{"path":"/dev/tty*"},{"path":"/dev/ttyS*","fileMode":400,"permissions":"rw"}]` {
		t.Errorf("deferred devices = %q", s.Annotations[layout.AnnotationDevices])
	}
}

func TestDeterministicJSON(t *testing.T) {
	cfg := spec.Config{Command: []string{"/x"}, Sysctl: map[string]string{"b": "1", "a": "2", "c": "3", "d": "4"}}
	first, _ := Generate("a", layout.KindService, cfg, v1.Config{})
	want, err := Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		s, _ := Generate("a", layout.KindService, cfg, v1.Config{})
		b, _ := Marshal(s)
		if !bytes.Equal(b, want) {
			t.Fatal("two encodings of the same config differ")
		}
	}
	var back specs.Spec
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
}

// TestCPUQuota checks the quota is CPUs × the 100 ms period, exactly for
// the decimals written, and never under the kernel's 1 ms minimum.
func TestCPUQuota(t *testing.T) {
	for cpu, want := range map[string]int64{"0.5": 50000, "2": 200000, "1.5": 150000, "0.0125": 1250, "0.33333": 33333, "0.000015": 1000, "0.001": 1000, "1.000005": 100001} {
		cfg := spec.Config{Command: []string{"/x"}, Resources: &spec.Resources{CPU: spec.MustParse[spec.CPU](cpu)}}
		s, err := Generate("a", layout.KindService, cfg, v1.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if got := *s.Linux.Resources.CPU.Quota; got != want {
			t.Errorf("cpu %s: quota %d, want %d", cpu, got, want)
		}
	}
}
