// Package runtimeconfig turns a container's keel configuration and its
// image's config into the OCI runtime-spec document (a bundle's
// layout.BundleConfig) that init's runtime executes.
//
// The document is meant to be readable by standard OCI tools too, so keel's
// own settings that have no OCI field travel as the annotations
// internal/layout defines, in its wire types: this package converts the
// spec's types into them, and init reads only those.
package runtimeconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/spec"
)

// cpuPeriod is the CFS period (µs) that resources.cpu is expressed against.
const cpuPeriod = 100000

// microsPerQuota is how many millionths of a CPU (spec.CPU.Micros) make a
// microsecond of quota in each cpuPeriod.
const microsPerQuota = 1_000_000 / cpuPeriod

// MaskedPaths and ReadonlyPaths are runc's defaults: kernel interfaces a
// container must not read or write.
var (
	MaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	ReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// Generate builds the runtime-spec document for the container name of the
// given kind (layout.KindOnboot, KindService or KindOnshutdown) from its
// configuration cfg
// (package defaults already overridden by the spec entry) and its image's
// config img.
func Generate(name string, kind string, cfg spec.Config, img v1.Config) (*specs.Spec, error) {
	switch kind {
	case layout.KindOnboot, layout.KindService, layout.KindOnshutdown:
	default:
		return nil, fmt.Errorf("container %s: unknown kind %q", name, kind)
	}
	args := cfg.Command
	if len(args) == 0 {
		args = append(append([]string(nil), img.Entrypoint...), img.Cmd...)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("container %s: no command, and the image has no entrypoint or cmd", name)
	}
	caps := capabilitySet(cfg.Capabilities)
	ambient := capabilitySet(cfg.Ambient)
	cwd := "/"
	if img.WorkingDir != "" {
		cwd = img.WorkingDir
	}
	if cfg.Cwd != nil && *cfg.Cwd != "" {
		cwd = *cfg.Cwd
	}
	user, err := userOf(cfg, img)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	process := &specs.Process{
		Args:            append([]string(nil), args...),
		Env:             Environment(img.Env, cfg.Env),
		Cwd:             cwd,
		User:            user,
		NoNewPrivileges: cfg.NoNewPrivileges != nil && *cfg.NoNewPrivileges,
		OOMScoreAdj:     cfg.OOMScoreAdj,
		Capabilities: &specs.LinuxCapabilities{
			Bounding:  caps,
			Effective: caps,
			Permitted: caps,
		},
	}
	if len(ambient) > 0 {
		// An ambient capability must also be permitted and inheritable.
		process.Capabilities.Inheritable = ambient
		process.Capabilities.Ambient = ambient
	}
	for _, l := range cfg.Rlimits {
		process.Rlimits = append(process.Rlimits, specs.POSIXRlimit{Type: l.Name, Soft: l.Soft, Hard: l.Hard})
	}

	namespaces, err := namespacesOf(cfg)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: process,
		Root:    &specs.Root{Path: layout.BundleRootfs, Readonly: cfg.Readonly != nil && *cfg.Readonly},
		Linux: &specs.Linux{
			Namespaces:    namespaces,
			CgroupsPath:   layout.CgroupParent + "/" + name,
			MaskedPaths:   append([]string(nil), MaskedPaths...),
			ReadonlyPaths: append([]string(nil), ReadonlyPaths...),
		},
		Annotations: map[string]string{
			layout.AnnotationName: name,
			layout.AnnotationKind: kind,
		},
	}
	if hasNamespace(namespaces, specs.UTSNamespace) {
		s.Hostname = name
		if cfg.Hostname != nil && *cfg.Hostname != "" {
			s.Hostname = *cfg.Hostname
		}
	} else if cfg.Hostname != nil && *cfg.Hostname != "" {
		return nil, fmt.Errorf("container %s: hostname needs a new uts namespace", name)
	}
	if len(cfg.Sysctl) > 0 {
		s.Linux.Sysctl = make(map[string]string, len(cfg.Sysctl))
		for k, v := range cfg.Sysctl {
			s.Linux.Sysctl[k] = v
		}
	}

	restart := layout.RestartNever
	if kind == layout.KindService {
		restart = layout.RestartAlways
	}
	if cfg.Restart != nil && *cfg.Restart != "" {
		restart = *cfg.Restart
	}
	s.Annotations[layout.AnnotationRestart] = restart
	s.Annotations[layout.AnnotationSeccomp] = layout.SeccompDefault
	if cfg.Seccomp != nil && *cfg.Seccomp != "" {
		s.Annotations[layout.AnnotationSeccomp] = *cfg.Seccomp
	}
	if cfg.Runtime != nil {
		b, err := json.Marshal(runtimeOf(cfg.Runtime))
		if err != nil {
			return nil, fmt.Errorf("container %s: runtime: %w", name, err)
		}
		s.Annotations[layout.AnnotationRuntime] = string(b)
	}

	if s.Mounts, err = mountsOf(cfg, hasNamespace(namespaces, specs.NetworkNamespace)); err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	if err := devicesOf(s, cfg.Devices); err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	if err := resourcesOf(s.Linux.Resources, cfg.Resources); err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	// Masking a path that a bind deliberately exposes would undo the bind
	// (a service given /proc/sys by bind means to write it).
	s.Linux.MaskedPaths = withoutBound(s.Linux.MaskedPaths, s.Mounts)
	s.Linux.ReadonlyPaths = withoutBound(s.Linux.ReadonlyPaths, s.Mounts)
	return s, nil
}

// runtimeOf converts the spec's runtime key into the wire type init
// reads.
func runtimeOf(r *spec.Runtime) layout.Runtime {
	out := layout.Runtime{Mkdir: r.Mkdir}
	for _, i := range r.Interfaces {
		out.Interfaces = append(out.Interfaces, layout.Interface{Name: i.Name, Add: i.Add, Peer: i.Peer, CreateInNS: i.CreateInNS})
	}
	if b := r.BindNS; b != nil {
		out.BindNS = &layout.BindNS{Net: b.Net, Pid: b.Pid, Ipc: b.Ipc, Uts: b.Uts, Mnt: b.Mnt, Cgroup: b.Cgroup}
	}
	return out
}

// SetSeccompProgram records in s the digest of the compiled seccomp
// program that goes beside it as layout.BundleSeccomp.
func SetSeccompProgram(s *specs.Spec, program []byte) {
	sum := sha256.Sum256(program)
	s.Annotations[layout.AnnotationSeccompSHA256] = hex.EncodeToString(sum[:])
}

// Marshal encodes a document as layout.BundleConfig: indented, with a trailing
// newline. encoding/json sorts map keys, so equal documents give equal
// bytes.
func Marshal(s *specs.Spec) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", layout.BundleConfig, err)
	}
	return append(b, '\n'), nil
}

func capabilitySet(caps []spec.Capability) []string {
	set := map[string]bool{}
	for _, c := range caps {
		if c.IsAll() {
			for _, k := range layout.Capabilities() {
				set[k] = true
			}
			continue
		}
		set[c.Name()] = true
	}
	var out []string
	// Kernel number order: stable and what readers of capability.h expect.
	for _, k := range layout.Capabilities() {
		if set[k] {
			out = append(out, k)
		}
	}
	return out
}

// Environment merges the image's variables with the configuration's,
// later ones replacing earlier ones of the same name in place, and gives
// PATH a default (layout.DefaultPath) when neither sets it.
func Environment(image, config []string) []string {
	var out []string
	index := map[string]int{}
	for _, kv := range append(append([]string(nil), image...), config...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	if _, ok := index["PATH"]; !ok {
		out = append([]string{"PATH=" + layout.DefaultPath}, out...)
	}
	return out
}

// userOf takes uid/gid from the spec, else from a numeric image User
// ("uid[:gid]"): names cannot be resolved without the image's /etc/passwd.
func userOf(cfg spec.Config, img v1.Config) (specs.User, error) {
	var u specs.User
	uid, gid, err := spec.ParseImageUser(img.User)
	if err != nil {
		return u, fmt.Errorf("image user: %w", err)
	}
	switch {
	case cfg.UID != nil:
		u.UID = *cfg.UID
	case uid == nil:
		return u, fmt.Errorf("image user %q is not numeric: set uid", img.User)
	default:
		u.UID = *uid
	}
	switch {
	case cfg.GID != nil:
		u.GID = *cfg.GID
	case gid == nil:
		return u, fmt.Errorf("image group of %q is not numeric: set gid", img.User)
	default:
		u.GID = *gid
	}
	u.AdditionalGids = append([]uint32(nil), cfg.AdditionalGIDs...)
	return u, nil
}

func namespacesOf(cfg spec.Config) ([]specs.LinuxNamespace, error) {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	for _, n := range []struct {
		typ specs.LinuxNamespaceType
		val *string
	}{
		{specs.PIDNamespace, cfg.Pid},
		{specs.NetworkNamespace, cfg.Net},
		{specs.IPCNamespace, cfg.Ipc},
		{specs.UTSNamespace, cfg.Uts},
		{specs.CgroupNamespace, cfg.Cgroup},
	} {
		v := "new"
		if n.val != nil && *n.val != "" {
			v = *n.val
		}
		switch {
		case v == "host":
		case v == "new":
			ns = append(ns, specs.LinuxNamespace{Type: n.typ})
		case path.IsAbs(v):
			ns = append(ns, specs.LinuxNamespace{Type: n.typ, Path: v})
		default:
			return nil, fmt.Errorf("%s namespace %q: want new, host or an absolute path", n.typ, v)
		}
	}
	return ns, nil
}

func hasNamespace(ns []specs.LinuxNamespace, t specs.LinuxNamespaceType) bool {
	for _, n := range ns {
		if n.Type == t {
			return true
		}
	}
	return false
}

func mountsOf(cfg spec.Config, newNet bool) ([]specs.Mount, error) {
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	m := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
	if !newNet {
		// sysfs of the host's network namespace cannot be mounted again
		// from a new mount namespace without it; bind it instead. Not
		// recursively: the host's cgroup2 mount would come along, and the
		// container's own (namespaced) cgroup2 could not go on top of it.
		m[5] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"bind", "nosuid", "noexec", "nodev", "ro"}}
	}
	for _, b := range cfg.Binds {
		parts := strings.Split(b, ":")
		if len(parts) < 2 || len(parts) > 3 || !path.IsAbs(parts[0]) || !path.IsAbs(parts[1]) {
			return nil, fmt.Errorf("bind %q: want /host:/container[:options]", b)
		}
		opts := []string{"rbind"}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro", "rw", "rshared", "rslave", "rprivate", "shared", "slave", "private",
					"nosuid", "nodev", "noexec", "suid", "dev", "exec":
					opts = append(opts, o)
				default:
					return nil, fmt.Errorf("bind %q: unknown option %q", b, o)
				}
			}
		}
		m = append(m, specs.Mount{Destination: path.Clean(parts[1]), Type: "bind", Source: path.Clean(parts[0]), Options: opts})
	}
	for _, t := range cfg.Tmpfs {
		dst, opt, _ := strings.Cut(t, ":")
		if !path.IsAbs(dst) {
			return nil, fmt.Errorf("tmpfs %q: want /path[:options]", t)
		}
		opts := []string{"nosuid", "nodev"}
		if opt != "" {
			opts = append(opts, strings.Split(opt, ",")...)
		}
		m = append(m, specs.Mount{Destination: path.Clean(dst), Type: "tmpfs", Source: "tmpfs", Options: opts})
	}
	for _, x := range cfg.Mounts {
		if !path.IsAbs(x.Destination) {
			return nil, fmt.Errorf("mount %q: destination must be absolute", x.Destination)
		}
		m = append(m, specs.Mount{Destination: path.Clean(x.Destination), Type: x.Type, Source: x.Source, Options: append([]string(nil), x.Options...)})
	}
	return m, nil
}

func withoutBound(paths []string, mounts []specs.Mount) []string {
	var out []string
	for _, p := range paths {
		bound := false
		for _, m := range mounts {
			if m.Type == "bind" && m.Destination == p {
				bound = true
			}
		}
		if !bound {
			out = append(out, p)
		}
	}
	return out
}

// defaultDeviceRules allow what every runtime provides: null, zero, full,
// tty, random, urandom, the pty master and slaves.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	c := func(major, minor int64) specs.LinuxDeviceCgroup {
		ma, mi := major, minor
		r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &ma, Access: "rwm"}
		if minor >= 0 {
			r.Minor = &mi
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		c(1, 3), c(1, 5), c(1, 7), c(5, 0), c(1, 8), c(1, 9), c(5, 2), c(136, -1),
	}
}

func devicesOf(s *specs.Spec, devices []spec.Device) error {
	s.Linux.Resources = &specs.LinuxResources{Devices: defaultDeviceRules()}
	var deferred []layout.DeferredDevice
	for _, d := range devices {
		if !path.IsAbs(d.Path) || !strings.HasPrefix(path.Clean(d.Path), "/dev/") {
			return fmt.Errorf("device %q: want a path under /dev", d.Path)
		}
		perms := d.Permissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return fmt.Errorf("device %q: permissions %q: want letters of rwm", d.Path, perms)
		}
		var mode *os.FileMode
		if d.Mode.IsSet() {
			m := d.Mode.Mode()
			mode = &m
		}
		if d.Type != "" && d.Type != "c" && d.Type != "b" {
			return fmt.Errorf("device %q: type %q: want c or b", d.Path, d.Type)
		}
		if d.Type == "" || d.Major == nil || d.Minor == nil || strings.ContainsAny(d.Path, "*?[") {
			deferred = append(deferred, layout.DeferredDevice{
				Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor, FileMode: mode, Permissions: d.Permissions,
			})
			continue
		}
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
			Path: path.Clean(d.Path), Type: d.Type, Major: *d.Major, Minor: *d.Minor, FileMode: mode,
		})
		major, minor := *d.Major, *d.Minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: perms,
		})
	}
	if len(deferred) > 0 {
		b, err := json.Marshal(deferred)
		if err != nil {
			return fmt.Errorf("devices: %w", err)
		}
		s.Annotations[layout.AnnotationDevices] = string(b)
	}
	return nil
}

func resourcesOf(r *specs.LinuxResources, res *spec.Resources) error {
	if res == nil {
		return nil
	}
	if res.Memory.IsSet() {
		n := res.Memory.Bytes()
		r.Memory = &specs.LinuxMemory{Limit: &n}
	}
	if res.CPU.IsSet() {
		// The quota is CPUs × period, rounded half up: the period is
		// 1/10 s, so a tenth of the millionths.
		quota := (res.CPU.Micros() + microsPerQuota/2) / microsPerQuota
		// The kernel refuses quotas under 1 ms.
		quota = max(quota, 1000)
		period := uint64(cpuPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if res.Pids != nil {
		if *res.Pids <= 0 {
			return fmt.Errorf("resources.pids: want a positive number")
		}
		p := *res.Pids
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
	return nil
}
