package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// stageArg, as os.Args[1], makes the binary run as a container's first
// stage instead of its normal main (see ChildMain).
const stageArg = "__keel_container_stage__"

// Fds the first stage finds its pipes at (after stdin, stdout, stderr).
const (
	fdConfig = 3 // JSON stageConfig, then EOF
	fdGo     = 4 // one byte once the parent has finished its setup
	fdError  = 5 // an error message, or EOF when exec succeeded
)

// Options are where a runtime keeps its state on the host.
type Options struct {
	// CgroupMount is the cgroup2 mount that spec cgroupsPath values are
	// relative to (default /sys/fs/cgroup).
	CgroupMount string
	// RunDir holds a scratch directory per container, where writable
	// roots get their tmpfs-backed overlay (default /run/keel/containers).
	RunDir string
	// Exe is the binary re-executed as the first stage
	// (default /proc/self/exe): it must call ChildMain first thing.
	Exe string
	// Stdout and Stderr receive the container's output; nil is /dev/null.
	Stdout, Stderr *os.File
}

func (o Options) withDefaults() Options {
	if o.CgroupMount == "" {
		o.CgroupMount = "/sys/fs/cgroup"
	}
	if o.RunDir == "" {
		o.RunDir = "/run/keel/containers"
	}
	if o.Exe == "" {
		o.Exe = "/proc/self/exe"
	}
	return o
}

// Process is a started container.
type Process struct {
	Pid      int
	Cgroup   string   // the container's cgroup directory
	Warnings []string // limits that could not be applied
}

// stageConfig is what the first stage is told.
type stageConfig struct {
	Spec    *specs.Spec `json:"spec"`
	Rootfs  string      `json:"rootfs"`
	Scratch string      `json:"scratch"`
	Seccomp []byte      `json:"seccomp,omitempty"` // the verified program; none when unconfined
	// HostNamespaces identifies the runtime's own namespaces, which a
	// container's sysctls must not reach (see checkSysctls).
	HostNamespaces map[specs.LinuxNamespaceType]nsID `json:"host_namespaces,omitempty"`
}

var cloneFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
}

// Start runs the bundle's process and returns once it has exec'd (or
// failed to). The caller owns reaping: Start never waits for the process,
// so that a PID 1 reaping with Wait4(-1) gets every status. On error after
// the process was created, the process has been killed and Process.Pid is
// set so the caller can reap it.
func (b *Bundle) Start(opts Options) (*Process, error) {
	opts = opts.withDefaults()
	s := b.Spec
	filter, err := b.seccompProgram()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", b.Name, err)
	}
	if b.Runtime != nil {
		for _, d := range b.Runtime.Mkdir {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("container %s: runtime.mkdir: %w", b.Name, err)
			}
		}
	}
	var flags uintptr = unix.CLONE_NEWNS
	for _, ns := range s.Linux.Namespaces {
		if ns.Path == "" {
			flags |= cloneFlags[ns.Type]
		} else if ns.Type == specs.MountNamespace || ns.Type == specs.PIDNamespace {
			return nil, fmt.Errorf("container %s: joining an existing %s namespace is not supported", b.Name, ns.Type)
		}
	}
	cgPath := s.Linux.CgroupsPath
	if cgPath == "" {
		cgPath = layout.CgroupParent + "/" + b.Name
	}
	p := &Process{}
	p.Cgroup, p.Warnings, err = makeCgroup(opts.CgroupMount, cgPath, s.Linux.Resources)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", b.Name, err)
	}
	cg, err := os.Open(p.Cgroup)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", b.Name, err)
	}
	defer cg.Close()

	scratch := filepath.Join(opts.RunDir, b.Name)
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return nil, fmt.Errorf("container %s: %w", b.Name, err)
	}

	var pipes [3][2]*os.File // config, go, error: {read, write}
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", b.Name, err)
		}
		pipes[i] = [2]*os.File{r, w}
		defer r.Close()
		defer w.Close()
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", b.Name, err)
	}
	defer devnull.Close()
	out, errOut := opts.Stdout, opts.Stderr
	if out == nil {
		out = devnull
	}
	if errOut == nil {
		errOut = devnull
	}
	cmd := &exec.Cmd{
		Path:       opts.Exe,
		Args:       []string{"keel-stage:" + b.Name, stageArg},
		Env:        []string{},
		Stdin:      devnull,
		Stdout:     out,
		Stderr:     errOut,
		ExtraFiles: []*os.File{pipes[0][0], pipes[1][0], pipes[2][1]},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  flags,
			Setsid:      true,
			UseCgroupFD: true,
			CgroupFD:    int(cg.Fd()),
		},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("container %s: starting first stage: %w", b.Name, err)
	}
	p.Pid = cmd.Process.Pid
	// Drop the pidfd: the caller's reaper collects the status.
	_ = cmd.Process.Release()
	fail := func(err error) (*Process, error) {
		_ = unix.Kill(p.Pid, unix.SIGKILL)
		return p, fmt.Errorf("container %s: %w", b.Name, err)
	}
	pipes[0][0].Close()
	pipes[1][0].Close()
	pipes[2][1].Close()

	stage := stageConfig{Spec: s, Rootfs: b.Rootfs(), Scratch: scratch, Seccomp: filter}
	if len(s.Linux.Sysctl) > 0 {
		if stage.HostNamespaces, err = ownNamespaces(); err != nil {
			return fail(err)
		}
	}
	cfg, err := json.Marshal(stage)
	if err != nil {
		return fail(err)
	}
	if _, err := pipes[0][1].Write(cfg); err != nil {
		return fail(fmt.Errorf("sending config: %w", err))
	}
	pipes[0][1].Close()

	if b.Runtime != nil {
		if err := setupInterfaces(p.Pid, b.Runtime.Interfaces); err != nil {
			return fail(err)
		}
		if err := bindNamespaces(p.Pid, b.Runtime.BindNS); err != nil {
			return fail(err)
		}
	}
	if _, err := pipes[1][1].Write([]byte{1}); err != nil {
		return fail(fmt.Errorf("releasing first stage: %w", err))
	}
	pipes[1][1].Close()
	msg, err := io.ReadAll(pipes[2][0])
	if err != nil {
		return fail(fmt.Errorf("reading first stage status: %w", err))
	}
	if len(msg) > 0 {
		return fail(errors.New(string(msg)))
	}
	return p, nil
}
