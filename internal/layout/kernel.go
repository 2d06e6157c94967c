package layout

import (
	"strings"

	"golang.org/x/sys/unix"
)

// capability is one Linux capability: its name in the document's
// process.capabilities and its number in capset(2).
type capability struct {
	name   string
	number uint
}

// capabilities are the kernel's, in number order. The numbers are
// x/sys/unix's (include/uapi/linux/capability.h), never positions in the
// list: kernel_test.go checks each name against x/sys's own source.
var capabilities = [...]capability{
	{"CAP_CHOWN", unix.CAP_CHOWN},
	{"CAP_DAC_OVERRIDE", unix.CAP_DAC_OVERRIDE},
	{"CAP_DAC_READ_SEARCH", unix.CAP_DAC_READ_SEARCH},
	{"CAP_FOWNER", unix.CAP_FOWNER},
	{"CAP_FSETID", unix.CAP_FSETID},
	{"CAP_KILL", unix.CAP_KILL},
	{"CAP_SETGID", unix.CAP_SETGID},
	{"CAP_SETUID", unix.CAP_SETUID},
	{"CAP_SETPCAP", unix.CAP_SETPCAP},
	{"CAP_LINUX_IMMUTABLE", unix.CAP_LINUX_IMMUTABLE},
	{"CAP_NET_BIND_SERVICE", unix.CAP_NET_BIND_SERVICE},
	{"CAP_NET_BROADCAST", unix.CAP_NET_BROADCAST},
	{"CAP_NET_ADMIN", unix.CAP_NET_ADMIN},
	{"CAP_NET_RAW", unix.CAP_NET_RAW},
	{"CAP_IPC_LOCK", unix.CAP_IPC_LOCK},
	{"CAP_IPC_OWNER", unix.CAP_IPC_OWNER},
	{"CAP_SYS_MODULE", unix.CAP_SYS_MODULE},
	{"CAP_SYS_RAWIO", unix.CAP_SYS_RAWIO},
	{"CAP_SYS_CHROOT", unix.CAP_SYS_CHROOT},
	{"CAP_SYS_PTRACE", unix.CAP_SYS_PTRACE},
	{"CAP_SYS_PACCT", unix.CAP_SYS_PACCT},
	{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN},
	{"CAP_SYS_BOOT", unix.CAP_SYS_BOOT},
	{"CAP_SYS_NICE", unix.CAP_SYS_NICE},
	{"CAP_SYS_RESOURCE", unix.CAP_SYS_RESOURCE},
	{"CAP_SYS_TIME", unix.CAP_SYS_TIME},
	{"CAP_SYS_TTY_CONFIG", unix.CAP_SYS_TTY_CONFIG},
	{"CAP_MKNOD", unix.CAP_MKNOD},
	{"CAP_LEASE", unix.CAP_LEASE},
	{"CAP_AUDIT_WRITE", unix.CAP_AUDIT_WRITE},
	{"CAP_AUDIT_CONTROL", unix.CAP_AUDIT_CONTROL},
	{"CAP_SETFCAP", unix.CAP_SETFCAP},
	{"CAP_MAC_OVERRIDE", unix.CAP_MAC_OVERRIDE},
	{"CAP_MAC_ADMIN", unix.CAP_MAC_ADMIN},
	{"CAP_SYSLOG", unix.CAP_SYSLOG},
	{"CAP_WAKE_ALARM", unix.CAP_WAKE_ALARM},
	{"CAP_BLOCK_SUSPEND", unix.CAP_BLOCK_SUSPEND},
	{"CAP_AUDIT_READ", unix.CAP_AUDIT_READ},
	{"CAP_PERFMON", unix.CAP_PERFMON},
	{"CAP_BPF", unix.CAP_BPF},
	{"CAP_CHECKPOINT_RESTORE", unix.CAP_CHECKPOINT_RESTORE},
}

// Capabilities returns the name of every capability, CAP_ prefixed, in
// kernel number order: the order the builder writes them in.
func Capabilities() []string {
	out := make([]string, len(capabilities))
	for i, c := range capabilities {
		out[i] = c.name
	}
	return out
}

// CapabilityNumber returns the kernel's number of a capability named as
// Capabilities names it.
func CapabilityNumber(name string) (uint, bool) {
	for _, c := range capabilities {
		if c.name == name {
			return c.number, true
		}
	}
	return 0, false
}

// rlimits are the resource limits of the document's process.rlimits, by
// the name it gives them.
var rlimits = [...]struct {
	name     string
	resource int
}{
	{"RLIMIT_AS", unix.RLIMIT_AS},
	{"RLIMIT_CORE", unix.RLIMIT_CORE},
	{"RLIMIT_CPU", unix.RLIMIT_CPU},
	{"RLIMIT_DATA", unix.RLIMIT_DATA},
	{"RLIMIT_FSIZE", unix.RLIMIT_FSIZE},
	{"RLIMIT_LOCKS", unix.RLIMIT_LOCKS},
	{"RLIMIT_MEMLOCK", unix.RLIMIT_MEMLOCK},
	{"RLIMIT_MSGQUEUE", unix.RLIMIT_MSGQUEUE},
	{"RLIMIT_NICE", unix.RLIMIT_NICE},
	{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE},
	{"RLIMIT_NPROC", unix.RLIMIT_NPROC},
	{"RLIMIT_RSS", unix.RLIMIT_RSS},
	{"RLIMIT_RTPRIO", unix.RLIMIT_RTPRIO},
	{"RLIMIT_RTTIME", unix.RLIMIT_RTTIME},
	{"RLIMIT_SIGPENDING", unix.RLIMIT_SIGPENDING},
	{"RLIMIT_STACK", unix.RLIMIT_STACK},
}

// RlimitResource returns the setrlimit(2) resource of a limit named
// RLIMIT_NAME.
func RlimitResource(name string) (int, bool) {
	for _, r := range rlimits {
		if r.name == name {
			return r.resource, true
		}
	}
	return 0, false
}

// Namespaces that own sysctls, as SysctlNamespace names them.
const (
	SysctlNet = "net"
	SysctlIPC = "ipc"
	SysctlUTS = "uts"
)

// SysctlNamespace returns the namespace (SysctlNet, SysctlIPC or
// SysctlUTS) whose copy of a sysctl a container writes, or "" for a
// sysctl the kernel keeps once for the whole machine, which no container
// may set. These are the sysctls runc lets a container set; the builder
// refuses the others and init checks again before writing.
func SysctlNamespace(name string) string {
	switch {
	case strings.HasPrefix(name, "net."):
		return SysctlNet
	case strings.HasPrefix(name, "kernel.msg"), strings.HasPrefix(name, "kernel.sem"),
		strings.HasPrefix(name, "kernel.shm"), strings.HasPrefix(name, "fs.mqueue."):
		return SysctlIPC
	case name == "kernel.hostname", name == "kernel.domainname":
		return SysctlUTS
	}
	return ""
}
