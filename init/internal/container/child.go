package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// ChildMain runs the container first stage when the process was started
// as one by Start, and never returns then; otherwise it returns at once.
// Call it first thing in main (and in TestMain of tests that start
// containers).
func ChildMain() {
	if len(os.Args) < 2 || os.Args[1] != stageArg {
		return
	}
	// Capabilities, prctl and setns are per thread: everything up to the
	// exec happens on this one.
	runtime.LockOSThread()
	errPipe := os.NewFile(fdError, "error")
	unix.CloseOnExec(fdError)
	err := stage()
	fmt.Fprint(errPipe, err.Error())
	os.Exit(1)
}

// stage sets the container up and execs its process; it returns only
// on failure.
func stage() error {
	unix.CloseOnExec(fdConfig)
	unix.CloseOnExec(fdGo)
	var cfg stageConfig
	data, err := io.ReadAll(os.NewFile(fdConfig, "config"))
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("decoding config: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(os.NewFile(fdGo, "go"), b[:]); err != nil {
		return fmt.Errorf("waiting for the parent: %w", err)
	}
	s := cfg.Spec
	if err := joinNamespaces(s.Linux.Namespaces); err != nil {
		return err
	}
	if err := checkSysctls(s, cfg.HostNamespaces); err != nil {
		return err
	}
	clones, err := cloneSharedBinds(s)
	if err != nil {
		return err
	}
	defer closeClones(clones)
	root, err := prepareRoot(cfg)
	if err != nil {
		return err
	}
	if err := mountAll(root, s, clones); err != nil {
		return err
	}
	if err := pivot(root); err != nil {
		return err
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	// In the container's namespaces (checkSysctls) and through its own
	// /proc: each write reaches the container's copy of the sysctl.
	for _, k := range sortedKeys(s.Linux.Sysctl) {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(s.Linux.Sysctl[k]), 0); err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	for _, p := range s.Linux.MaskedPaths {
		if err := maskPath(p); err != nil {
			return err
		}
	}
	for _, p := range s.Linux.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	if s.Root.Readonly {
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("read-only root: %w", err)
		}
	}
	proc := s.Process
	for _, r := range proc.Rlimits {
		res, ok := layout.RlimitResource(r.Type)
		if !ok {
			return fmt.Errorf("unknown rlimit %s", r.Type)
		}
		// syscall.Setrlimit (not unix.Prlimit) so Go does not restore its
		// saved RLIMIT_NOFILE at exec.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("rlimit %s: %w", r.Type, err)
		}
	}
	if proc.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(fmt.Sprint(*proc.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("oom_score_adj: %w", err)
		}
	}
	argv0, err := lookPath(proc.Args[0], proc.Env)
	if err != nil {
		return err
	}
	// The seccomp filter goes on as late as it can: with no_new_privs,
	// right before exec; without, installing one takes CAP_SYS_ADMIN,
	// which setCredentials may drop, so before it (as runc does), and the
	// profile must allow what follows: prctl, setgroups, setresgid,
	// setresuid, capset, chdir and execve, as Docker's default does.
	if len(cfg.Seccomp) > 0 && !proc.NoNewPrivileges {
		if err := installSeccomp(cfg.Seccomp); err != nil {
			return err
		}
	}
	if err := setCredentials(proc); err != nil {
		return err
	}
	cwd := proc.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.Chdir(cwd); err != nil {
		return fmt.Errorf("cwd: %w", err)
	}
	if len(cfg.Seccomp) > 0 && proc.NoNewPrivileges {
		if err := installSeccomp(cfg.Seccomp); err != nil {
			return err
		}
	}
	if err := unix.Exec(argv0, proc.Args, proc.Env); err != nil {
		return fmt.Errorf("exec %s: %w", argv0, err)
	}
	return errors.New("exec returned")
}

var nsFlags = map[specs.LinuxNamespaceType]int{
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
}

// joinNamespaces enters namespaces given by path, and makes the new
// cgroup namespace here rather than at clone: only now is the process in
// its own group, which becomes the namespace's root.
func joinNamespaces(nss []specs.LinuxNamespace) error {
	for _, ns := range nss {
		flag, ok := nsFlags[ns.Type]
		switch {
		case !ok:
			continue
		case ns.Path != "":
			fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("joining %s namespace: %w", ns.Type, err)
			}
			err = unix.Setns(fd, flag)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("joining %s namespace %s: %w", ns.Type, ns.Path, err)
			}
		case ns.Type == specs.CgroupNamespace:
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return fmt.Errorf("cgroup namespace: %w", err)
			}
		}
	}
	return nil
}

// prepareRoot returns the directory that becomes /: the rootfs bound onto
// itself when read-only, else an overlay whose upper layer lives on a
// tmpfs private to this mount namespace (gone when the container is).
func prepareRoot(cfg stageConfig) (string, error) {
	// Nothing done here may leak back to the host.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return "", fmt.Errorf("making / rslave: %w", err)
	}
	if cfg.Spec.Root.Readonly {
		if err := unix.Mount(cfg.Rootfs, cfg.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return "", fmt.Errorf("binding rootfs: %w", err)
		}
		return cfg.Rootfs, nil
	}
	if err := unix.Mount("tmpfs", cfg.Scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return "", fmt.Errorf("scratch tmpfs: %w", err)
	}
	upper, work, merged := filepath.Join(cfg.Scratch, "upper"), filepath.Join(cfg.Scratch, "work"), filepath.Join(cfg.Scratch, "root")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", fmt.Errorf("scratch: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", cfg.Rootfs, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("writable root (overlay; is the overlay module loaded?): %w", err)
	}
	return merged, nil
}

// pivot makes root the new / and detaches the old one.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// pivot_root(".", ".") stacks the old root under the new one, so no
	// put_old directory is needed in a possibly read-only rootfs.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

func maskPath(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("masking %s: %w", p, err)
	}
	if fi.IsDir() {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
	} else {
		err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("masking %s: %w", p, err)
	}
	return nil
}

func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	return nil
}

// lookPath resolves a command name in the container's PATH, as the exec
// family does, after pivot_root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := layout.DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", name, path)
}

// hostDevices resolves the layout.AnnotationDevices annotation against
// the host's /dev (still visible before pivot_root).
func hostDevices(s *specs.Spec) ([]specs.LinuxDevice, error) {
	a := s.Annotations[layout.AnnotationDevices]
	if a == "" {
		return nil, nil
	}
	var want []layout.DeferredDevice
	if err := json.Unmarshal([]byte(a), &want); err != nil {
		return nil, fmt.Errorf("%s annotation: %w", layout.AnnotationDevices, err)
	}
	var out []specs.LinuxDevice
	for _, d := range want {
		paths, err := filepath.Glob(d.Path)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d.Path, err)
		}
		for _, p := range paths {
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				return nil, fmt.Errorf("device %s: %w", p, err)
			}
			dev := specs.LinuxDevice{Path: p, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev))}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFCHR:
				dev.Type = "c"
			case unix.S_IFBLK:
				dev.Type = "b"
			default:
				continue
			}
			if d.Major != nil {
				dev.Major = *d.Major
			}
			if d.Minor != nil {
				dev.Minor = *d.Minor
			}
			m := os.FileMode(st.Mode & 0o777)
			if d.FileMode != nil {
				m = *d.FileMode
			}
			dev.FileMode = &m
			out = append(out, dev)
		}
	}
	return out, nil
}
