// Package reaper collects the exit statuses of child processes in one
// place. A PID 1 must reap every orphan; any other waiter (exec.Cmd.Wait)
// would race it for statuses, so all waiting goes through here.
package reaper

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Status is how a process ended.
type Status struct {
	Pid    int
	Status unix.WaitStatus
}

// Code is the exit code, or 128+signal for a killed process, as a shell
// reports it.
func (s Status) Code() int {
	if s.Status.Signaled() {
		return 128 + int(s.Status.Signal())
	}
	return s.Status.ExitStatus()
}

// String reads as the end of a sentence: "exit status 1", "killed by
// signal SIGKILL (core dumped)".
func (s Status) String() string {
	if !s.Status.Signaled() {
		return fmt.Sprintf("exit status %d", s.Status.ExitStatus())
	}
	// Signal's own String is a description ("killed"), which cannot follow
	// "killed by"; the name is what a user looks up.
	sig := s.Status.Signal()
	name := unix.SignalName(sig)
	if name == "" {
		name = fmt.Sprintf("%d", int(sig))
	}
	msg := "killed by signal " + name
	if s.Status.CoreDump() {
		msg += " (core dumped)"
	}
	return msg
}

// Reaper waits for children and hands each status to whoever spawned it.
type Reaper struct {
	all     bool
	mu      sync.Mutex
	waiting map[int]chan Status
	orphan  func(Status)
}

// New starts a reaper. With all set (PID 1) it reaps every child,
// including orphans re-parented to it, passing those to orphan (may be
// nil); otherwise it waits only for the processes spawned through it,
// leaving the process's other children alone.
func New(all bool, orphan func(Status)) *Reaper {
	r := &Reaper{all: all, waiting: map[int]chan Status{}, orphan: orphan}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	go r.loop(sigs)
	return r
}

// Spawn runs start, which creates a process and returns its pid, and
// returns a channel that receives the process's status. The status cannot
// be lost, even if the process ends before start returns.
func (r *Reaper) Spawn(start func() (int, error)) (int, <-chan Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if pid <= 0 {
		return pid, nil, err
	}
	ch := make(chan Status, 1)
	r.waiting[pid] = ch
	return pid, ch, err
}

func (r *Reaper) loop(sigs <-chan os.Signal) {
	// A ticker covers SIGCHLDs that coalesced or raced a registration.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r.reap()
		select {
		case <-sigs:
		case <-tick.C:
		}
	}
}

func (r *Reaper) reap() {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "keel: reaper: recovered panic: %v\n", p)
		}
	}()
	if r.all {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				return
			}
			r.dispatch(Status{Pid: pid, Status: ws})
		}
	}
	r.mu.Lock()
	pids := make([]int, 0, len(r.waiting))
	for pid := range r.waiting {
		pids = append(pids, pid)
	}
	r.mu.Unlock()
	for _, pid := range pids {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if got == pid && err == nil {
			r.dispatch(Status{Pid: pid, Status: ws})
		}
	}
}

func (r *Reaper) dispatch(s Status) {
	if !s.Status.Exited() && !s.Status.Signaled() {
		return // stopped or continued, not gone
	}
	r.mu.Lock()
	ch, ok := r.waiting[s.Pid]
	delete(r.waiting, s.Pid)
	r.mu.Unlock()
	if ok {
		ch <- s
	} else if r.orphan != nil {
		r.orphan(s)
	}
}
