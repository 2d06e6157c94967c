// Package layout is the contract between keel's builder and its PID 1:
// where things are in an image, what the files there say beyond the OCI
// runtime-spec document, the tables that give names their kernel
// numbers, and the keys of the kernel command line that init reads.
//
// The builder (internal/build, internal/runtimeconfig, internal/spec)
// writes an image by these names and init reads it by the same ones, so
// neither side spells a path, an annotation or a key of its own. The
// package is named for what it holds, the layout of an image as PID 1
// finds it; it imports only the standard library, golang.org/x/sys/unix
// (the kernel's numbers) and the OCI runtime-spec types, so that /init
// links none of the builder's schema, TOML or registry code
// (deps_test.go keeps it so).
//
// Paths in an image are relative to its root, as the builder's trees hold
// them; PID 1 finds them under "/". The paths init makes at run time
// (RunDir, ControlSocket) are absolute.
package layout

import "fmt"

// Files and directories of every image.
const (
	// Init is PID 1, the init package's binary; KeelCtl is a symlink to
	// it (CtlTarget), which runs as the control client when started
	// under that name (CtlName).
	Init    = "init"
	KeelCtl = "usr/bin/" + CtlName
	// CtlName, as the base name of argv[0], selects init's control
	// client mode.
	CtlName = "keel-ctl"
	// CtlTarget is where the KeelCtl symlink points.
	CtlTarget = "/" + Init

	// Console is the console device node the builder puts in the
	// image: the kernel opens it for init before devtmpfs is mounted.
	Console = "dev/console"
	// Hostname, when the image has it, names the machine.
	Hostname = "etc/hostname"
	// LogDir holds each container's rotated output, NAME.log.
	LogDir = "var/log"

	// KeelDir holds what the builder records about the image.
	KeelDir = "etc/keel"
	// Modules lists the kernel modules init loads, one absolute path
	// per line, in load order.
	Modules = KeelDir + "/modules"
	// Spec is the resolved spec the image was built from.
	Spec = KeelDir + "/build.toml"
	// SBOM is the image's SPDX document.
	SBOM = KeelDir + "/sbom.spdx.json"
	// Provenance says what the image was built from.
	Provenance = KeelDir + "/provenance.json"
)

// Where the containers' bundles are: one directory per container, each
// holding BundleConfig, BundleRootfs and, unless the container is
// unconfined, BundleSeccomp.
const (
	ContainersDir = "containers"
	// OnbootDir holds the containers init runs at boot, one after
	// another in the order of their OrderedBundle names, each to its end.
	OnbootDir = ContainersDir + "/onboot"
	// ServicesDir holds the services init supervises, named for the
	// container.
	ServicesDir = ContainersDir + "/services"
	// OnshutdownDir holds the containers init runs in order at shutdown.
	OnshutdownDir = ContainersDir + "/onshutdown"
)

// The files of a bundle.
const (
	// BundleConfig is the OCI runtime-spec document, with keel's own
	// settings as annotations (bundle.go).
	BundleConfig = "config.json"
	// BundleRootfs is the container's root file system, the document's
	// root.path.
	BundleRootfs = "rootfs"
	// BundleSeccomp is the compiled seccomp program (raw struct
	// sock_filter instructions) whose digest AnnotationSeccompSHA256
	// records.
	BundleSeccomp = "seccomp.bpf"
)

// OrderedBundle is the directory name of the index-th (from 0) container
// of an ordered kind (onboot, onshutdown): "NNN-name", so that name order
// is the spec's order.
func OrderedBundle(index int, name string) string {
	return fmt.Sprintf("%03d-%s", index, name)
}

// BundleName is the container name a bundle directory's base name stands
// for: the name without an OrderedBundle prefix.
func BundleName(base string) string {
	i := 0
	for i < len(base) && base[i] >= '0' && base[i] <= '9' {
		i++
	}
	if i > 0 && i < len(base)-1 && base[i] == '-' {
		return base[i+1:]
	}
	return base
}

// Where init keeps its state at run time.
const (
	RunDir = "/run/keel"
	// ControlSocket is where init answers keel-ctl.
	ControlSocket = RunDir + "/init.sock"
	// CgroupParent is the cgroup, under the cgroup2 mount, that holds
	// one cgroup per container (CgroupParent/NAME, the document's
	// cgroupsPath).
	CgroupParent = "/keel"
)

// The keys of the kernel command line init reads, written KEY=VALUE.
const (
	// CmdlineConsoleLog=1 copies every container's output to the
	// console.
	CmdlineConsoleLog = "keel.console_log"
	// CmdlineRoot names a root on disk: PartLabel+NAME (a GPT
	// partition's name) or /dev/PATH; CmdlineRootFSType is its file
	// system (squashfs or erofs) and CmdlineRootWait how many seconds
	// init waits for it.
	CmdlineRoot       = "keel.root"
	CmdlineRootFSType = "keel.rootfstype"
	CmdlineRootWait   = "keel.rootwait"
	// PartLabel prefixes a partition named by its GPT name.
	PartLabel = "PARTLABEL="
	// The dm-verity keys of a verified root: the root hash (its
	// presence asks for one), the hash partition (as CmdlineRoot), the
	// salt in hex ("-" for none), the number of 4096-byte data blocks
	// and what a corrupt block does (restart, panic or log).
	CmdlineVerityRootHash   = "keel.verity.roothash"
	CmdlineVerityHash       = "keel.verity.hash"
	CmdlineVeritySalt       = "keel.verity.salt"
	CmdlineVerityDataBlocks = "keel.verity.datablocks"
	CmdlineVerityCorruption = "keel.verity.corruption"
)
