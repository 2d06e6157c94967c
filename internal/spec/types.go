// Package spec holds keel's declarative inputs: the image spec (build.toml)
// and the package description (package.toml), with strict parsing,
// validation and merging.
//
// The types here are shared by every stage of the builder, so their field
// set is the contract: parsing fills them, later stages only read them.
package spec

import (
	"path/filepath"
	"strings"
)

// Spec is one image description, possibly merged from several files.
type Spec struct {
	Name       string      `toml:"name,omitempty" json:"name,omitempty"`
	Arch       []string    `toml:"arch,omitempty" json:"arch,omitempty"`
	Init       []ImageRef  `toml:"init,omitempty" json:"init,omitempty"`
	Kernel     Kernel      `toml:"kernel" json:"kernel"`
	Onboot     []Container `toml:"onboot,omitempty" json:"onboot,omitempty"`
	Services   []Container `toml:"service,omitempty" json:"service,omitempty"`
	Onshutdown []Container `toml:"onshutdown,omitempty" json:"onshutdown,omitempty"`
	Files      []File      `toml:"file,omitempty" json:"file,omitempty"`
	Volumes    []Volume    `toml:"volume,omitempty" json:"volume,omitempty"`
	Output     Output      `toml:"output" json:"output"`
}

// ImageRef names an image as the user wrote it. Local references
// ("./pkg/sshd", "/abs/dir", "x.tar") are resolved against Dir, the
// directory of the spec file that named them; Dir never appears in any
// serialised form, so a resolved spec written into an image does not
// depend on where the build ran.
type ImageRef struct {
	Ref string `toml:"-" json:"-"`
	Dir string `toml:"-" json:"-"`
}

// MarshalText writes the reference as the user wrote it.
func (r ImageRef) MarshalText() ([]byte, error) { return []byte(r.Ref), nil }

// UnmarshalText reads a reference; Dir is filled in by the parser.
func (r *ImageRef) UnmarshalText(b []byte) error { r.Ref = string(b); return nil }

func (r ImageRef) String() string { return r.Ref }

// IsLocal reports whether the reference names a path on the build host
// rather than a registry.
func (r ImageRef) IsLocal() bool {
	return strings.HasPrefix(r.Ref, "./") || strings.HasPrefix(r.Ref, "../") ||
		strings.HasPrefix(r.Ref, "/") || r.Ref == "." || r.Ref == ".."
}

// Path is the host path of a local reference, absolute when Dir is.
func (r ImageRef) Path() string {
	if filepath.IsAbs(r.Ref) {
		return filepath.Clean(r.Ref)
	}
	return filepath.Join(r.Dir, r.Ref)
}

// Kernel selects the kernel image, its command line and the modules that go
// into the image (with their dependencies).
type Kernel struct {
	Image   ImageRef `toml:"image" json:"image"`
	Cmdline string   `toml:"cmdline,omitempty" json:"cmdline,omitempty"`
	Modules []string `toml:"modules,omitempty" json:"modules,omitempty"`
}

// Container is one onboot, service or onshutdown entry.
type Container struct {
	Name  string   `toml:"name" json:"name"`
	Image ImageRef `toml:"image" json:"image"`
	// AllowImagePrivileges names the privilege keys (ImagePrivilegeKeys,
	// or "all") that the org.keel.config label of a pulled, untrusted
	// image may set for this container. Only a spec entry grants them: it
	// is no Config key, so neither a package nor a label can.
	AllowImagePrivileges []string `toml:"allow-image-privileges,omitempty" json:"allow-image-privileges,omitempty"`
	Config
}

// Config is the runtime configuration of a container. Every field is
// optional: a nil pointer or nil slice means "not set", so a package's
// defaults (its [config]) can be overridden key by key by a spec entry
// (see Config.Override). The same struct is stored, as JSON, in a package
// image's org.keel.config label (read back by ParseLabel).
type Config struct {
	Command         []string          `toml:"command,omitempty" json:"command,omitempty"`
	Env             []string          `toml:"env,omitempty" json:"env,omitempty"` // KEY=value
	Cwd             *string           `toml:"cwd,omitempty" json:"cwd,omitempty"`
	Capabilities    []Capability      `toml:"capabilities,omitempty" json:"capabilities,omitempty"` // CAP_NET_ADMIN, or "all"
	Ambient         []Capability      `toml:"ambient,omitempty" json:"ambient,omitempty"`
	Binds           []string          `toml:"binds,omitempty" json:"binds,omitempty"` // "/host:/ctr[:opt,opt]" opts: ro, rw, rshared, rslave, rprivate, nosuid, nodev, noexec
	Mounts          []Mount           `toml:"mounts,omitempty" json:"mounts,omitempty"`
	Tmpfs           []string          `toml:"tmpfs,omitempty" json:"tmpfs,omitempty"` // "/path[:size=64m,mode=1777]"
	Devices         []Device          `toml:"devices,omitempty" json:"devices,omitempty"`
	Net             *string           `toml:"net,omitempty" json:"net,omitempty"` // "new" | "host" | "/path/to/ns"
	Pid             *string           `toml:"pid,omitempty" json:"pid,omitempty"`
	Ipc             *string           `toml:"ipc,omitempty" json:"ipc,omitempty"`
	Uts             *string           `toml:"uts,omitempty" json:"uts,omitempty"`
	Cgroup          *string           `toml:"cgroup,omitempty" json:"cgroup,omitempty"` // the cgroup namespace: "new" (default) | "host" | path
	Readonly        *bool             `toml:"readonly,omitempty" json:"readonly,omitempty"`
	UID             *uint32           `toml:"uid,omitempty" json:"uid,omitempty"`
	GID             *uint32           `toml:"gid,omitempty" json:"gid,omitempty"`
	AdditionalGIDs  []uint32          `toml:"additional-gids,omitempty" json:"additional-gids,omitempty"`
	NoNewPrivileges *bool             `toml:"no-new-privileges,omitempty" json:"no-new-privileges,omitempty"`
	Seccomp         *string           `toml:"seccomp,omitempty" json:"seccomp,omitempty"` // "default" | "unconfined" | "profile.json" (relative to the spec file)
	Hostname        *string           `toml:"hostname,omitempty" json:"hostname,omitempty"`
	OOMScoreAdj     *int              `toml:"oom-score-adj,omitempty" json:"oom-score-adj,omitempty"`
	Sysctl          map[string]string `toml:"sysctl,omitempty" json:"sysctl,omitempty"`
	Rlimits         []Rlimit          `toml:"rlimits,omitempty" json:"rlimits,omitempty"` // "RLIMIT_NOFILE,soft,hard" (or "nofile,soft,hard")
	Resources       *Resources        `toml:"resources,omitempty" json:"resources,omitempty"`
	Restart         *string           `toml:"restart,omitempty" json:"restart,omitempty"` // always | on-failure | never
	Runtime         *Runtime          `toml:"runtime,omitempty" json:"runtime,omitempty"`
}

// Mount is an OCI-style mount.
type Mount struct {
	Type        string   `toml:"type" json:"type"`
	Source      string   `toml:"source,omitempty" json:"source,omitempty"`
	Destination string   `toml:"destination" json:"destination"`
	Options     []string `toml:"options,omitempty" json:"options,omitempty"`
}

// Device makes a device node available in a container (and allows it).
type Device struct {
	Path        string   `toml:"path" json:"path"`                                   // e.g. /dev/ttyS0, or a prefix glob /dev/tty*
	Type        string   `toml:"type,omitempty" json:"type,omitempty"`               // c | b (default: from the host node)
	Major       *int64   `toml:"major,omitempty" json:"major,omitempty"`             // default: from the host node
	Minor       *int64   `toml:"minor,omitempty" json:"minor,omitempty"`             // default: from the host node
	Mode        FileMode `toml:"mode,omitempty" json:"mode,omitzero"`                // "0666"
	Permissions string   `toml:"permissions,omitempty" json:"permissions,omitempty"` // rwm
}

// Resources are cgroup v2 limits.
type Resources struct {
	Memory Size   `toml:"memory,omitempty" json:"memory,omitzero"` // size, "256MiB"
	CPU    CPU    `toml:"cpu,omitempty" json:"cpu,omitzero"`       // CPUs, "0.5"
	Pids   *int64 `toml:"pids,omitempty" json:"pids,omitempty"`
}

// Runtime holds actions init performs around a container's start. It is
// the spec's key; init reads it as layout.Runtime, which
// internal/runtimeconfig converts it into.
type Runtime struct {
	Mkdir      []string    `toml:"mkdir,omitempty" json:"mkdir,omitempty"` // host paths created before start
	Interfaces []Interface `toml:"interfaces,omitempty" json:"interfaces,omitempty"`
	BindNS     *BindNS     `toml:"bind-ns,omitempty" json:"bind-ns,omitempty"`
}

// Interface creates or moves a network interface into the container's
// network namespace.
type Interface struct {
	Name       string `toml:"name" json:"name"`                                     // name inside the container
	Add        string `toml:"add,omitempty" json:"add,omitempty"`                   // "veth" to create one
	Peer       string `toml:"peer,omitempty" json:"peer,omitempty"`                 // host-side name of a veth
	CreateInNS bool   `toml:"create-in-ns,omitempty" json:"create-in-ns,omitempty"` // create inside the ns instead of moving
}

// BindNS binds the container's namespaces to host paths so others can join.
type BindNS struct {
	Net    string `toml:"net,omitempty" json:"net,omitempty"`
	Pid    string `toml:"pid,omitempty" json:"pid,omitempty"`
	Ipc    string `toml:"ipc,omitempty" json:"ipc,omitempty"`
	Uts    string `toml:"uts,omitempty" json:"uts,omitempty"`
	Mnt    string `toml:"mnt,omitempty" json:"mnt,omitempty"`
	Cgroup string `toml:"cgroup,omitempty" json:"cgroup,omitempty"`
}

// File places a file, directory or symlink in the image's root.
// Exactly one of Contents, Source, Symlink or Directory is used.
type File struct {
	Path      string   `toml:"path" json:"path"` // absolute path in the image
	Contents  *string  `toml:"contents,omitempty" json:"contents,omitempty"`
	Source    string   `toml:"source,omitempty" json:"source,omitempty"` // host path, relative to the file that names it
	Symlink   string   `toml:"symlink,omitempty" json:"symlink,omitempty"`
	Directory bool     `toml:"directory,omitempty" json:"directory,omitempty"`
	Mode      FileMode `toml:"mode,omitempty" json:"mode,omitzero"` // octal, "0644"; default 0644 (0755 for directories)
	UID       uint32   `toml:"uid,omitempty" json:"uid,omitempty"`
	GID       uint32   `toml:"gid,omitempty" json:"gid,omitempty"`
	// Dir is the directory of the spec or package file that named Source.
	Dir string `toml:"-" json:"-"`
	// Origin is that spec or package file, for errors about Source.
	Origin string `toml:"-" json:"-"`
}

// SourcePath is the host path of Source.
func (f File) SourcePath() string {
	if filepath.IsAbs(f.Source) {
		return f.Source
	}
	return filepath.Join(f.Dir, f.Source)
}

// Volume is a named, persistent data volume: a partition of Size on every
// disk format, formatted once at first boot and mounted by init at
// VolumePath(Name) before containers start; a bind names it as its source.
type Volume struct {
	Name string `toml:"name" json:"name"`
	Size Size   `toml:"size,omitempty" json:"size,omitzero"`
}

// Output selects the formats written and their layout.
type Output struct {
	Formats []string `toml:"formats,omitempty" json:"formats,omitempty"`
	Size    Size     `toml:"size,omitempty" json:"size,omitzero"`  // disk size; default: fit
	Root    string   `toml:"root,omitempty" json:"root,omitempty"` // initrd | squashfs | erofs
	// Memory is the RAM of the smallest machine the image is for (a
	// size; default 1GiB). An initrd root lives in it, so the build
	// refuses one that takes more than InitrdMaxPercent of it.
	Memory           Size `toml:"memory,omitempty" json:"memory,omitzero"`
	InitrdMaxPercent int  `toml:"initrd-max-percent,omitempty" json:"initrd-max-percent,omitempty"` // 1–100; default 50
	// Verity puts a dm-verity hash tree of a root on disk (squashfs,
	// erofs) in a partition next to it and its root hash on the kernel
	// command line, so init mounts the root only through the kernel's
	// check of every block it reads.
	Verity bool `toml:"verity,omitempty" json:"verity,omitempty"`
	// VerityCorruption is what the kernel does on a block that does not
	// match: restart (default), panic or log (the read fails).
	VerityCorruption string `toml:"verity-corruption,omitempty" json:"verity-corruption,omitempty"`
}

// Package is one package.toml: how keel builds a package image.
type Package struct {
	Name   string  `toml:"name" json:"name"`
	Go     []GoBin `toml:"go,omitempty" json:"go,omitempty"`
	Debian *Debian `toml:"debian,omitempty" json:"debian,omitempty"`
	Files  []File  `toml:"file,omitempty" json:"file,omitempty"`
	Config Config  `toml:"config" json:"config"`
	Build  *Build  `toml:"build,omitempty" json:"build,omitempty"`
	// Accounts are users and groups written into the image's /etc/passwd
	// and /etc/group (see accounts.go).
	Accounts *Accounts `toml:"accounts,omitempty" json:"accounts,omitempty"`

	// Include names files (relative to the package directory) whose
	// [[file]] entries are added after the package's own: one list,
	// such as busybox's applet links, shared by several packages.
	Include []string `toml:"include,omitempty" json:"include,omitempty"`

	// Dir is the package directory (absolute).
	Dir string `toml:"-" json:"-"`
}

// GoBin is a static Go program built into the package.
type GoBin struct {
	Main    string   `toml:"main" json:"main"` // package path relative to the package dir ("./cmd/x") or an import path
	Dest    string   `toml:"dest" json:"dest"` // absolute path in the image
	Ldflags string   `toml:"ldflags,omitempty" json:"ldflags,omitempty"`
	Tags    []string `toml:"tags,omitempty" json:"tags,omitempty"`
}

// Debian lists Debian packages installed (unpacked, no maintainer
// scripts) into the package. "{arch}" in a package name expands to the
// target's Debian architecture.
type Debian struct {
	Suite    string   `toml:"suite,omitempty" json:"suite,omitempty"` // default "bookworm"
	Packages []string `toml:"packages" json:"packages"`
	// Components are the archive components whose indexes are read
	// (default: main), e.g. ["main", "non-free-firmware"].
	Components []string `toml:"components,omitempty" json:"components,omitempty"`
	// Exclude names packages treated as already satisfied: neither
	// unpacked nor traversed for their own dependencies.
	Exclude []string `toml:"exclude,omitempty" json:"exclude,omitempty"`
	// Paths, when set, keeps only these paths (and what is below them)
	// of the unpacked packages; PathsExclude drops paths (after Paths).
	// Both take absolute paths, with shell globs ("/usr/share/doc/*").
	Paths        []string `toml:"paths,omitempty" json:"paths,omitempty"`
	PathsExclude []string `toml:"paths-exclude,omitempty" json:"paths-exclude,omitempty"`
}

// Build describes command-running build steps solved by BuildKit.
type Build struct {
	From   string      `toml:"from,omitempty" json:"from,omitempty"` // "scratch", "base" (the [[go]]/[debian]/[[file]] parts), "./pkg/x", or an image reference
	Steps  []BuildStep `toml:"step,omitempty" json:"step,omitempty"`
	Output []string    `toml:"output,omitempty" json:"output,omitempty"` // paths of the result that make up the package; default all
	Net    bool        `toml:"network,omitempty" json:"network,omitempty"`
}

// BuildStep is one ordered build step.
type BuildStep struct {
	Run    string   `toml:"run,omitempty" json:"run,omitempty"` // shell command
	Env    []string `toml:"env,omitempty" json:"env,omitempty"`
	Cwd    string   `toml:"cwd,omitempty" json:"cwd,omitempty"`
	Cache  []string `toml:"cache,omitempty" json:"cache,omitempty"` // cache mount targets
	Copy   string   `toml:"copy,omitempty" json:"copy,omitempty"`   // source path in the package dir (or in From stage)
	To     string   `toml:"to,omitempty" json:"to,omitempty"`       // destination of Copy
	FromPk string   `toml:"from,omitempty" json:"from,omitempty"`   // copy from another package/image instead of the package dir
}
