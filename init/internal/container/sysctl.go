package container

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// sysctlNamespaces are the namespaces that own sysctls, by the name
// layout.SysctlNamespace gives them.
var sysctlNamespaces = map[string]specs.LinuxNamespaceType{
	layout.SysctlNet: specs.NetworkNamespace,
	layout.SysctlIPC: specs.IPCNamespace,
	layout.SysctlUTS: specs.UTSNamespace,
}

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func namespaceOf(file string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return nsID{}, err
	}
	return nsID{Dev: st.Dev, Ino: st.Ino}, nil
}

// ownNamespaces identifies the runtime's (init's) own namespaces that
// own sysctls.
func ownNamespaces() (map[specs.LinuxNamespaceType]nsID, error) {
	out := map[specs.LinuxNamespaceType]nsID{}
	for name, typ := range sysctlNamespaces {
		id, err := namespaceOf("/proc/self/ns/" + name)
		if err != nil {
			return nil, fmt.Errorf("the runtime's %s namespace: %w", typ, err)
		}
		out[typ] = id
	}
	return out, nil
}

// checkSysctls refuses, in the first stage once it is in the container's
// namespaces, a sysctl the container does not own: one no namespace
// holds (a host sysctl such as kernel.core_pattern), or one of a
// namespace the container shares with the runtime, by "host" or by a
// path that leads back to the runtime's own. The builder refuses them
// too; this is the same rule where the write happens, with full root.
func checkSysctls(s *specs.Spec, host map[specs.LinuxNamespaceType]nsID) error {
	for _, k := range sortedKeys(s.Linux.Sysctl) {
		name := layout.SysctlNamespace(k)
		if name == "" {
			return fmt.Errorf("sysctl %s: not namespaced: a container may not set a host sysctl", k)
		}
		typ := sysctlNamespaces[name]
		if !hasNamespace(s.Linux.Namespaces, typ) {
			return fmt.Errorf("sysctl %s: the container shares the host's %s namespace", k, typ)
		}
		// Namespaces are per thread: this one's are the container's.
		id, err := namespaceOf("/proc/thread-self/ns/" + name)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
		if want, ok := host[typ]; !ok || id == want {
			return fmt.Errorf("sysctl %s: the container's %s namespace is the host's", k, typ)
		}
	}
	return nil
}

func hasNamespace(nss []specs.LinuxNamespace, typ specs.LinuxNamespaceType) bool {
	for _, ns := range nss {
		if ns.Type == typ {
			return true
		}
	}
	return false
}
