package spec

import (
	"fmt"

	"github.com/keelos/keel/internal/layout"
)

// hostSysctls says where a host sysctl goes instead.
const hostSysctls = "set host sysctls with the sysctl onboot package (pkg/sysctl) and a [[file]] in /etc/sysctl.d"

// sysctlProblem explains why a container with config c may not set the
// sysctl name, or returns "". A namespace key c leaves unset is "new",
// and a namespace joined by path counts as the container's own (init
// checks at start that it is not init's own namespace).
func (c *Config) sysctlProblem(name string) string {
	ns := layout.SysctlNamespace(name)
	if ns == "" {
		return fmt.Sprintf("%q is a host sysctl: a container may set only those of its own namespaces "+
			"(net.* with net; kernel.msg*, kernel.sem*, kernel.shm*, fs.mqueue.* with ipc; "+
			"kernel.hostname, kernel.domainname with uts); %s", name, hostSysctls)
	}
	v := map[string]*string{layout.SysctlNet: c.Net, layout.SysctlIPC: c.Ipc, layout.SysctlUTS: c.Uts}[ns]
	if v != nil && *v == "host" {
		return fmt.Sprintf("%q needs the container's own %s namespace, but %s = \"host\": "+
			"give the container %s = \"new\", or %s", name, ns, ns, ns, hostSysctls)
	}
	return ""
}

// CheckSysctls refuses a sysctl of c outside the namespaces c owns. Run
// it on the effective configuration (a package's [config] overridden by
// the spec entry): a package may set net = "host" and the entry a net.*
// sysctl.
func (c Config) CheckSysctls() error {
	for _, k := range sortedKeys(c.Sysctl) {
		if msg := c.sysctlProblem(k); msg != "" {
			return fmt.Errorf("sysctl: %s", msg)
		}
	}
	return nil
}
