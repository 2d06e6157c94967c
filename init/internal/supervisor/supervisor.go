// Package supervisor keeps services running: it starts them, restarts
// them by policy with exponential back-off, stops them with a grace
// period, and reports their state. Each service has one goroutine that
// owns its state, so commands and exits are handled in order.
package supervisor

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/init/internal/reaper"
	"github.com/keelos/keel/internal/layout"
)

// Policy says when a service that ended is started again.
type Policy string

// Restart policies.
const (
	Always    Policy = layout.RestartAlways
	OnFailure Policy = layout.RestartOnFailure
	Never     Policy = layout.RestartNever
)

// StartFunc starts one run of a service, returning its pid and a channel
// that receives its status (see reaper.Reaper.Spawn).
type StartFunc func() (pid int, done <-chan reaper.Status, err error)

// KillFunc signals a running service (default: kill(pid, sig)).
type KillFunc func(pid int, sig unix.Signal) error

// Service is what the supervisor is given about a service.
type Service struct {
	Name   string
	Policy Policy
	Start  StartFunc
	Kill   KillFunc
}

// Config tunes back-off and stopping.
type Config struct {
	BaseDelay  time.Duration // first restart delay (default 1 s), doubled per crash
	MaxDelay   time.Duration // cap (default 30 s)
	ResetAfter time.Duration // uptime that forgives earlier crashes (default 10 s)
	Grace      time.Duration // SIGTERM to SIGKILL (default 10 s)
	CrashLoop  int           // consecutive crashes reported as a crash loop (default 5)
	Logf       func(format string, args ...any)
}

// States a service is in.
const (
	StateStopped  = "stopped"
	StateRunning  = "running"
	StateBackoff  = "backoff"
	StateStopping = "stopping"
	StateExited   = "exited"
	StateFailed   = "failed"
)

// Status is one line of `keel-ctl ps`.
type Status struct {
	Name     string        `json:"name"`
	State    string        `json:"state"`
	Pid      int           `json:"pid,omitempty"`
	Restarts int           `json:"restarts"`
	Uptime   time.Duration `json:"uptime"`
	LastExit string        `json:"last_exit,omitempty"`
}

// Supervisor runs services.
type Supervisor struct {
	cfg      Config
	closing  atomic.Bool // set by Shutdown: nothing starts any more
	mu       sync.Mutex
	services map[string]*service
}

// New makes a supervisor.
func New(cfg Config) *Supervisor {
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 30 * time.Second
	}
	if cfg.ResetAfter <= 0 {
		cfg.ResetAfter = 10 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.CrashLoop <= 0 {
		cfg.CrashLoop = 5
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Supervisor{cfg: cfg, services: map[string]*service{}}
}

// ErrUnknown is returned for a name that is not a service.
var ErrUnknown = errors.New("no such service")

type op int

const (
	opStart op = iota
	opStop
	opRestart
)

type command struct {
	op   op
	done chan struct{}
}

type service struct {
	Service
	sv   *Supervisor
	cmds chan command

	mu       sync.Mutex
	state    string
	pid      int
	restarts int
	started  time.Time
	lastExit string
	starts   []time.Time
}

// Add registers a service, stopped. It panics on a duplicate name: the
// builder guarantees unique names.
func (s *Supervisor) Add(svc Service) {
	if svc.Kill == nil {
		svc.Kill = func(pid int, sig unix.Signal) error { return unix.Kill(pid, sig) }
	}
	v := &service{Service: svc, sv: s, cmds: make(chan command), state: StateStopped}
	s.mu.Lock()
	if _, dup := s.services[svc.Name]; dup {
		s.mu.Unlock()
		panic("supervisor: duplicate service " + svc.Name)
	}
	s.services[svc.Name] = v
	s.mu.Unlock()
	go v.run()
}

func (s *Supervisor) get(name string) (*service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.services[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrUnknown)
	}
	return v, nil
}

func (s *Supervisor) send(name string, o op) error {
	v, err := s.get(name)
	if err != nil {
		return err
	}
	c := command{op: o, done: make(chan struct{})}
	v.cmds <- c
	<-c.done
	return nil
}

// Start starts a stopped service (and clears its back-off).
func (s *Supervisor) Start(name string) error { return s.send(name, opStart) }

// Stop stops a service (SIGTERM, then SIGKILL after the grace period) and
// returns once it is down; it stays down until started.
func (s *Supervisor) Stop(name string) error { return s.send(name, opStop) }

// Restart stops a service if it runs, then starts it.
func (s *Supervisor) Restart(name string) error { return s.send(name, opRestart) }

// Names lists the services in name order.
func (s *Supervisor) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.services))
	for n := range s.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// StartAll starts every service at once.
func (s *Supervisor) StartAll() {
	for _, n := range s.Names() {
		go s.Start(n)
	}
}

// StopAll stops every service concurrently and waits for all.
func (s *Supervisor) StopAll() {
	var wg sync.WaitGroup
	for _, n := range s.Names() {
		wg.Add(1)
		go func() { defer wg.Done(); s.Stop(n) }()
	}
	wg.Wait()
}

// Shutdown stops every service for good: none starts again, whatever
// its policy or later commands.
func (s *Supervisor) Shutdown() {
	s.closing.Store(true)
	s.StopAll()
}

// Status reports every service, in name order.
func (s *Supervisor) Status() []Status {
	var out []Status
	for _, n := range s.Names() {
		v, _ := s.get(n)
		v.mu.Lock()
		st := Status{Name: n, State: v.state, Pid: v.pid, Restarts: v.restarts, LastExit: v.lastExit}
		if v.state == StateRunning {
			st.Uptime = time.Since(v.started).Truncate(time.Second)
		}
		v.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// StartTimes are the moments a service was started, oldest first.
func (s *Supervisor) StartTimes(name string) ([]time.Time, error) {
	v, err := s.get(name)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]time.Time(nil), v.starts...), nil
}

func (v *service) set(f func()) {
	v.mu.Lock()
	f()
	v.mu.Unlock()
}

// run owns the service; it survives its own panics so a bug here never
// leaves a service unsupervised.
func (v *service) run() {
	for !v.loop() {
	}
}

func (v *service) loop() (finished bool) {
	defer func() {
		if p := recover(); p != nil {
			v.sv.cfg.Logf("supervisor: %s: recovered panic: %v\n%s", v.Name, p, debug.Stack())
		}
	}()
	var (
		done     <-chan reaper.Status
		backoff  <-chan time.Time
		grace    <-chan time.Time
		waiters  []chan struct{}
		wantUp   bool
		restart  bool // start again once the stop completes
		failures int
	)
	launch := func() {
		if v.sv.closing.Load() {
			v.set(func() { v.state = StateStopped })
			return
		}
		pid, ch, err := v.Start()
		now := time.Now()
		v.set(func() { v.starts = append(v.starts, now) })
		if err != nil {
			v.sv.cfg.Logf("%s: start failed: %v", v.Name, err)
		}
		if ch == nil {
			// Nothing to wait for: count it as a crash at once.
			c := make(chan reaper.Status, 1)
			c <- reaper.Status{Pid: pid, Status: unix.WaitStatus(127 << 8)}
			ch = c
		}
		done = ch
		v.set(func() { v.state, v.pid, v.started = StateRunning, pid, now })
	}
	stopNow := func() {
		v.set(func() { v.state = StateStopping })
		v.set(func() {
			if v.pid > 0 {
				_ = v.Kill(v.pid, unix.SIGTERM)
			}
		})
		grace = time.After(v.sv.cfg.Grace)
	}
	for {
		select {
		case c := <-v.cmds:
			switch c.op {
			case opStart:
				wantUp, failures = true, 0
				if done == nil {
					backoff = nil
					launch()
				}
				close(c.done)
			case opStop, opRestart:
				wantUp, restart = c.op == opRestart, c.op == opRestart
				backoff = nil
				if done == nil {
					if restart {
						restart, failures = false, 0
						launch()
					} else {
						v.set(func() { v.state = StateStopped })
					}
					close(c.done)
					continue
				}
				waiters = append(waiters, c.done)
				if grace == nil {
					stopNow()
				}
			}
		case <-grace:
			grace = nil
			v.set(func() {
				if v.pid > 0 {
					v.sv.cfg.Logf("%s: did not stop within %v, killing", v.Name, v.sv.cfg.Grace)
					_ = v.Kill(v.pid, unix.SIGKILL)
				}
			})
		case st := <-done:
			done, grace = nil, nil
			var uptime time.Duration
			v.set(func() {
				uptime = time.Since(v.started)
				v.pid, v.lastExit = 0, st.String()
			})
			if len(waiters) > 0 {
				for _, w := range waiters {
					close(w)
				}
				waiters = nil
				if restart {
					restart, failures = false, 0
					launch()
				} else {
					v.set(func() { v.state = StateStopped })
				}
				continue
			}
			failed := st.Code() != 0
			up := v.Policy == Always || (v.Policy == OnFailure && failed)
			if !wantUp || !up {
				v.sv.cfg.Logf("%s: %v", v.Name, st)
				v.set(func() {
					v.state = StateExited
					if failed {
						v.state = StateFailed
					}
				})
				continue
			}
			if uptime >= v.sv.cfg.ResetAfter {
				failures = 0
			}
			failures++
			delay := v.sv.cfg.BaseDelay
			for i := 1; i < failures && delay < v.sv.cfg.MaxDelay; i++ {
				delay *= 2
			}
			delay = min(delay, v.sv.cfg.MaxDelay)
			if failures == v.sv.cfg.CrashLoop {
				v.sv.cfg.Logf("%s: crash loop: %d exits in a row (last: %v); still restarting", v.Name, failures, st)
			}
			v.sv.cfg.Logf("%s: %v; restarting in %v", v.Name, st, delay)
			v.set(func() { v.state, v.restarts = StateBackoff, v.restarts+1 })
			backoff = time.After(delay)
		case <-backoff:
			backoff = nil
			launch()
		}
	}
}
