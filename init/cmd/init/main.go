// Command init is keel's PID 1: it brings the machine up, runs the
// onboot containers in order, supervises the services, answers keel-ctl,
// and shuts the machine down cleanly. Started as keel-ctl (the image's
// /usr/bin/keel-ctl is a symlink to /init), it is that client instead.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/init/internal/boot"
	"github.com/keelos/keel/init/internal/container"
	"github.com/keelos/keel/init/internal/control"
	"github.com/keelos/keel/init/internal/ctl"
	"github.com/keelos/keel/init/internal/logring"
	"github.com/keelos/keel/init/internal/reaper"
	"github.com/keelos/keel/init/internal/supervisor"
	"github.com/keelos/keel/internal/layout"
)

// version is set with -ldflags "-X main.version=…".
var version = ""

const (
	ringSize      = 64 << 10
	logMax        = 1 << 20
	onshutdownMax = 30 * time.Second
)

func main() {
	if filepath.Base(os.Args[0]) == layout.CtlName {
		os.Exit(ctl.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	container.ChildMain()
	console := openConsole()
	logf := func(format string, args ...any) {
		fmt.Fprintf(console, "keel: "+format+"\n", args...)
	}
	if os.Getpid() != 1 {
		logf("init must run as PID 1")
		os.Exit(2)
	}
	if need, err := boot.NeedsSwitchRoot(); err != nil {
		logf("%v", err)
	} else if need {
		// A root on disk (layout.CmdlineRoot) is mounted and
		// switched into; without one the initramfs is moved into a tmpfs.
		// Both return only on failure; boot continues from the initramfs
		// then, where containers cannot pivot_root but init still
		// supervises.
		if err := boot.SwitchToDiskRoot(logf); errors.Is(err, boot.ErrNoDiskRoot) {
			logf("%v", boot.SwitchRoot())
		} else {
			logf("%v", err)
		}
	}
	in := &initd{console: console, logf: logf, shutdown: make(chan bool, 1), sinks: map[string]*logring.Sink{}}
	in.run()
}

func openConsole() io.Writer {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		return &lockedWriter{w: f}
	}
	return &lockedWriter{w: os.Stderr}
}

// lockedWriter keeps lines from different goroutines whole.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type initd struct {
	console    io.Writer
	logf       func(string, ...any)
	consoleLog bool
	reaper     *reaper.Reaper
	sup        *supervisor.Supervisor
	shutdown   chan bool // true: reboot

	mu    sync.Mutex
	sinks map[string]*logring.Sink
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// safely runs one step of init, turning a panic into a log line.
func (in *initd) safely(step string, f func()) {
	defer func() {
		if p := recover(); p != nil {
			in.logf("%s: recovered panic: %v\n%s", step, p, debug.Stack())
		}
	}()
	f()
}

func (in *initd) run() {
	in.safely("mounts", func() {
		for _, err := range boot.MountSystem() {
			in.logf("%v", err)
		}
	})
	fmt.Fprintf(in.console, "keel init %s\n", versionString())
	boot.Milestone(in.console, "init")
	in.consoleLog = boot.CmdlineFlag("/proc/cmdline", layout.CmdlineConsoleLog)
	in.reaper = reaper.New(true, nil)
	in.handleSignals()
	in.safely("system", func() {
		for _, err := range []error{boot.SeedRlimits(), boot.DisableCtrlAltDel()} {
			if err != nil {
				in.logf("%v", err)
			}
		}
		n, errs := boot.LoadModules("/" + layout.Modules)
		for _, err := range errs {
			in.logf("%v", err)
		}
		in.logf("%d modules loaded", n)
		boot.Milestone(in.console, "modules-loaded")
		if err := boot.LoopbackUp(); err != nil {
			in.logf("%v", err)
		}
		if err := boot.SetHostname(boot.Hostname("/" + layout.Hostname)); err != nil {
			in.logf("%v", err)
		}
	})
	stopWatch := make(chan struct{})
	go in.safely("power button", func() {
		boot.WatchPowerButton(func() { in.requestShutdown(false) }, stopWatch, in.logf)
	})

	// Volumes come before every container, so any of them may bind one.
	in.safely("volumes", func() { boot.MountVolumes(in.logf) })
	in.safely("onboot", func() { in.runToCompletion(layout.KindOnboot, layout.OnbootDir, 0) })
	boot.Milestone(in.console, "onboot-done")

	in.sup = supervisor.New(supervisor.Config{Logf: in.logf})
	in.safely("services", in.startServices)
	boot.Milestone(in.console, "services-running")

	go in.safely("control", func() {
		ln, err := control.Listen(control.SocketPath)
		if err != nil {
			in.logf("%v", err)
			return
		}
		if err := control.Serve(ln, handler{in}, in.logf); err != nil {
			in.logf("%v", err)
		}
	})

	reboot := <-in.shutdown
	close(stopWatch)
	in.safely("shutdown", func() { in.shutdownSystem(reboot) })
	for {
		// PID 1 must never exit; if the reboot call failed, keep reaping.
		time.Sleep(time.Hour)
	}
}

func (in *initd) handleSignals() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGUSR2)
	go func() {
		for s := range sigs {
			// SIGINT is Ctrl-Alt-Del (after CAD_OFF): reboot, as a PC would.
			in.requestShutdown(s == unix.SIGINT)
		}
	}()
}

func (in *initd) requestShutdown(reboot bool) {
	select {
	case in.shutdown <- reboot:
	default: // one is already under way
	}
}

func (in *initd) sink(name string) *logring.Sink {
	in.mu.Lock()
	defer in.mu.Unlock()
	if s, ok := in.sinks[name]; ok {
		return s
	}
	s := &logring.Sink{Ring: logring.NewRing(ringSize)}
	f, err := logring.OpenRotating(filepath.Join("/", layout.LogDir, name+".log"), logMax)
	if err != nil {
		in.logf("%v", err)
	} else {
		s.File = f
	}
	if in.consoleLog {
		s.Console = &logring.Prefixer{W: in.console, Prefix: "[" + name + "] "}
	}
	in.sinks[name] = s
	return s
}

// starter makes the supervisor's StartFunc for a bundle: output to the
// container's sink, status from the reaper, and the container's cgroup
// emptied and removed once its first process is gone.
func (in *initd) starter(b *container.Bundle, cgroup *string) supervisor.StartFunc {
	return func() (int, <-chan reaper.Status, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return 0, nil, err
		}
		var proc *container.Process
		pid, done, err := in.reaper.Spawn(func() (int, error) {
			p, err := b.Start(container.Options{Stdout: w, Stderr: w})
			proc = p
			if p == nil {
				return 0, err
			}
			return p.Pid, err
		})
		w.Close()
		sink := in.sink(b.Name)
		go in.safely("log "+b.Name, func() { sink.Pump(r); r.Close() })
		if proc != nil {
			*cgroup = proc.Cgroup
			for _, warn := range proc.Warnings {
				in.logf("%s: %s", b.Name, warn)
			}
		}
		if done == nil {
			return pid, nil, err
		}
		out := make(chan reaper.Status, 1)
		go func() {
			st := <-done
			if proc != nil {
				_ = container.KillCgroup(proc.Cgroup)
				_ = container.RemoveCgroup(proc.Cgroup)
			}
			out <- st
		}()
		return pid, out, err
	}
}

// runToCompletion runs the bundles of a kind, under dir in the image, in
// order, each to its end (or for at most limit, when set).
func (in *initd) runToCompletion(kind, dir string, limit time.Duration) {
	bundles, err := container.LoadAll("/" + dir)
	if err != nil {
		in.logf("%s: %v", kind, err)
	}
	for _, b := range bundles {
		var cg string
		_, done, err := in.starter(b, &cg)()
		if err != nil {
			in.logf("%s %s: %v", kind, b.Name, err)
		}
		if done == nil {
			continue
		}
		var timeout <-chan time.Time
		if limit > 0 {
			timeout = time.After(limit)
		}
		select {
		case st := <-done:
			if st.Code() != 0 {
				in.logf("%s %s: %v", kind, b.Name, st)
			} else {
				in.logf("%s %s: exited 0", kind, b.Name)
			}
		case <-timeout:
			in.logf("%s %s: still running after %v, killing it", kind, b.Name, limit)
			_ = container.KillCgroup(cg)
			<-done
		}
	}
}

func (in *initd) startServices() {
	bundles, err := container.LoadAll("/" + layout.ServicesDir)
	if err != nil {
		in.logf("services: %v", err)
	}
	for _, b := range bundles {
		cg := new(string)
		in.sup.Add(supervisor.Service{
			Name:   b.Name,
			Policy: supervisor.Policy(b.Restart),
			Start:  in.starter(b, cg),
			Kill: func(pid int, sig unix.Signal) error {
				if sig == unix.SIGKILL && *cg != "" {
					return container.KillCgroup(*cg)
				}
				return unix.Kill(pid, sig)
			},
		})
	}
	var wg sync.WaitGroup
	for _, b := range bundles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := in.sup.Start(b.Name); err != nil {
				in.logf("%s: %v", b.Name, err)
			}
		}()
	}
	wg.Wait()
}

func (in *initd) shutdownSystem(reboot bool) {
	boot.Milestone(in.console, "shutdown-start")
	in.safely("onshutdown", func() { in.runToCompletion(layout.KindOnshutdown, layout.OnshutdownDir, onshutdownMax) })
	if in.sup != nil {
		in.safely("stop services", in.sup.Shutdown)
	}
	unix.Sync()
	for _, err := range boot.UnmountAll() {
		in.logf("%v", err)
	}
	unix.Sync()
	boot.Milestone(in.console, "shutdown-done")
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		in.logf("reboot: %v", err)
	}
}

// handler answers keel-ctl.
type handler struct{ in *initd }

func (h handler) Status() []supervisor.Status { return h.in.sup.Status() }
func (h handler) Start(name string) error     { return h.in.sup.Start(name) }
func (h handler) Stop(name string) error      { return h.in.sup.Stop(name) }
func (h handler) Restart(name string) error   { return h.in.sup.Restart(name) }
func (h handler) Poweroff()                   { h.in.requestShutdown(false) }
func (h handler) Reboot()                     { h.in.requestShutdown(true) }

func (h handler) Logs(name string, follow bool) ([]byte, <-chan []byte, func(), error) {
	h.in.mu.Lock()
	s, ok := h.in.sinks[name]
	h.in.mu.Unlock()
	if !ok {
		return nil, nil, nil, fmt.Errorf("no logs for %s", name)
	}
	if !follow {
		return s.Ring.Bytes(), nil, nil, nil
	}
	snap, more, cancel := s.Ring.Follow()
	return snap, more, cancel, nil
}
