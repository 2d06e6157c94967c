package layout

import "os"

// A bundle's BundleConfig is an OCI runtime-spec document
// (github.com/opencontainers/runtime-spec/specs-go), readable by standard
// OCI tools; keel's settings that have no field there travel as these
// annotations.
const (
	// AnnotationName is the container's name (else BundleName of its
	// directory).
	AnnotationName = "org.keel.name"
	// AnnotationKind is KindOnboot, KindService or KindOnshutdown.
	AnnotationKind = "org.keel.kind"
	// AnnotationRestart is the restart policy: RestartAlways,
	// RestartOnFailure or RestartNever (the default).
	AnnotationRestart = "org.keel.restart"
	// AnnotationRuntime holds the JSON of Runtime: what init does around
	// the container's start.
	AnnotationRuntime = "org.keel.runtime"
	// AnnotationDevices holds the JSON list of DeferredDevice entries:
	// devices whose node numbers can only be known on the running
	// machine (no major/minor given, or a glob), which init resolves at
	// start.
	AnnotationDevices = "org.keel.devices"
	// AnnotationSeccomp names the container's seccomp profile:
	// SeccompDefault, SeccompUnconfined, or the path of a custom profile
	// as the spec gives it.
	AnnotationSeccomp = "org.keel.seccomp"
	// AnnotationSeccompSHA256 is the hex SHA-256 of the compiled program
	// in BundleSeccomp, which init installs only if it matches; absent
	// when the container is unconfined.
	AnnotationSeccompSHA256 = "org.keel.seccomp.sha256"
)

// Kinds of containers, the values of AnnotationKind.
const (
	KindOnboot     = "onboot"
	KindService    = "service"
	KindOnshutdown = "onshutdown"
)

// Restart policies, the values of AnnotationRestart.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Seccomp profiles of AnnotationSeccomp that name no file.
const (
	SeccompDefault    = "default"
	SeccompUnconfined = "unconfined"
)

// DefaultPath is the PATH of a container whose image and spec set none:
// the builder writes it into the document's environment, and init looks
// a command up in it when the environment has no PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Runtime is AnnotationRuntime: actions init performs around a
// container's start.
type Runtime struct {
	Mkdir      []string    `json:"mkdir,omitempty"` // host paths created before start
	Interfaces []Interface `json:"interfaces,omitempty"`
	BindNS     *BindNS     `json:"bind-ns,omitempty"`
}

// Interface creates or moves a network interface into the container's
// network namespace.
type Interface struct {
	Name       string `json:"name"`                   // name inside the container
	Add        string `json:"add,omitempty"`          // "veth" to create one, "" to move a host interface in
	Peer       string `json:"peer,omitempty"`         // host-side name of a veth
	CreateInNS bool   `json:"create-in-ns,omitempty"` // create inside the namespace instead of moving
}

// BindNS binds the container's namespaces to host paths so that others
// can join them.
type BindNS struct {
	Net    string `json:"net,omitempty"`
	Pid    string `json:"pid,omitempty"`
	Ipc    string `json:"ipc,omitempty"`
	Uts    string `json:"uts,omitempty"`
	Mnt    string `json:"mnt,omitempty"`
	Cgroup string `json:"cgroup,omitempty"`
}

// DeferredDevice is one entry of AnnotationDevices: a device of the
// configuration that init finds on the running machine. Path may be a
// glob; what is unset is taken from the node found there.
type DeferredDevice struct {
	Path        string       `json:"path"`
	Type        string       `json:"type,omitempty"` // c | b
	Major       *int64       `json:"major,omitempty"`
	Minor       *int64       `json:"minor,omitempty"`
	FileMode    *os.FileMode `json:"fileMode,omitempty"` // as in specs.LinuxDevice
	Permissions string       `json:"permissions,omitempty"`
}
