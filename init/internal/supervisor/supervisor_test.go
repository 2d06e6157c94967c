package supervisor

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/init/internal/reaper"
)

var rp = reaper.New(false, nil)

func shell(script string) StartFunc {
	return func() (int, <-chan reaper.Status, error) {
		return rp.Spawn(func() (int, error) {
			c := exec.Command("/bin/sh", "-c", script)
			if err := c.Start(); err != nil {
				return 0, err
			}
			pid := c.Process.Pid
			c.Process.Release()
			return pid, nil
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func status(s *Supervisor, name string) Status {
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	return Status{}
}

// TestKilledServiceRestartsWithGrowingDelays checks the back-off the
// supervisor chooses (doubling per kill, as it logs it) and that no
// restart comes before its back-off has passed since the kill. How much
// later it comes depends on the machine's load, so that is not asserted.
func TestKilledServiceRestartsWithGrowingDelays(t *testing.T) {
	const base = 40 * time.Millisecond
	var mu sync.Mutex
	var delays []string
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		t.Log(line)
		if _, d, ok := strings.Cut(line, "restarting in "); ok {
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
		}
	}
	s := New(Config{BaseDelay: base, MaxDelay: 10 * base, ResetAfter: time.Minute, Grace: time.Second, Logf: logf})
	s.Add(Service{Name: "victim", Policy: Always, Start: shell("exec sleep 100")})
	if err := s.Start("victim"); err != nil {
		t.Fatal(err)
	}
	for kill := 1; kill <= 4; kill++ {
		waitFor(t, "a running victim", func() bool { st := status(s, "victim"); return st.State == StateRunning && st.Pid > 0 })
		starts, _ := s.StartTimes("victim")
		if len(starts) != kill {
			t.Fatalf("after %d kills: %d starts", kill-1, len(starts))
		}
		killed := time.Now()
		unix.Kill(status(s, "victim").Pid, unix.SIGKILL)
		waitFor(t, "a restart", func() bool { st, _ := s.StartTimes("victim"); return len(st) == kill+1 })
		starts, _ = s.StartTimes("victim")
		want := base << (kill - 1)
		if gap := starts[kill].Sub(killed); gap < want {
			t.Errorf("restart %d came %v after the kill, before its back-off %v", kill, gap, want)
		}
	}
	mu.Lock()
	got := slices.Clone(delays)
	mu.Unlock()
	want := []string{"40ms", "80ms", "160ms", "320ms"}
	if !slices.Equal(got, want) {
		t.Errorf("back-offs %q, want %q", got, want)
	}
	if st := status(s, "victim"); st.Restarts != 4 {
		t.Errorf("restarts = %d, want 4", st.Restarts)
	}
	if err := s.Stop("victim"); err != nil {
		t.Fatal(err)
	}
	if st := status(s, "victim"); st.State != StateStopped || st.Pid != 0 {
		t.Errorf("after stop: %+v", st)
	}
}

func TestCrashingServiceBackoffIsCapped(t *testing.T) {
	const base = 20 * time.Millisecond
	s := New(Config{BaseDelay: base, MaxDelay: 4 * base, ResetAfter: time.Minute, Logf: t.Logf})
	s.Add(Service{Name: "crashy", Policy: OnFailure, Start: shell("exit 3")})
	s.Start("crashy")
	waitFor(t, "6 starts", func() bool { st, _ := s.StartTimes("crashy"); return len(st) >= 6 })
	s.Stop("crashy")
	starts, _ := s.StartTimes("crashy")
	for i := 4; i < 6; i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 4*base || gap > 4*base+2*time.Second {
			t.Errorf("restart %d after %v, want about the cap %v", i, gap, 4*base)
		}
	}
}

func TestNeverStaysDownAndOnFailureAcceptsSuccess(t *testing.T) {
	s := New(Config{BaseDelay: 10 * time.Millisecond, Logf: t.Logf})
	s.Add(Service{Name: "once", Policy: Never, Start: shell("exit 1")})
	s.Add(Service{Name: "ok", Policy: OnFailure, Start: shell("exit 0")})
	s.StartAll()
	waitFor(t, "both down", func() bool {
		return status(s, "once").State == StateFailed && status(s, "ok").State == StateExited
	})
	time.Sleep(300 * time.Millisecond)
	for _, n := range []string{"once", "ok"} {
		if st, _ := s.StartTimes(n); len(st) != 1 {
			t.Errorf("%s started %d times, want 1", n, len(st))
		}
	}
	if st := status(s, "once"); st.LastExit != "exit status 1" || st.Restarts != 0 {
		t.Errorf("once: %+v", st)
	}
}

func TestStopEscalatesToKillAndRestartRuns(t *testing.T) {
	s := New(Config{Grace: 200 * time.Millisecond, Logf: t.Logf})
	s.Add(Service{Name: "stubborn", Policy: Always, Start: shell("trap '' TERM; while :; do sleep 0.05; done")})
	s.Start("stubborn")
	waitFor(t, "running", func() bool { return status(s, "stubborn").Pid > 0 })
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	begin := time.Now()
	if err := s.Stop("stubborn"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 200*time.Millisecond {
		t.Errorf("stopped after %v, before the grace period", d)
	}
	if err := s.Restart("stubborn"); err != nil {
		t.Fatal(err)
	}
	if st := status(s, "stubborn"); st.State != StateRunning {
		t.Errorf("after restart: %+v", st)
	}
	s.StopAll()
	if err := s.Start("nope"); err == nil {
		t.Error("unknown service: want an error")
	}
}

func TestShutdownKeepsEverythingDown(t *testing.T) {
	s := New(Config{BaseDelay: 20 * time.Millisecond, Logf: t.Logf})
	s.Add(Service{Name: "crashy", Policy: Always, Start: shell("exit 1")})
	s.Start("crashy")
	waitFor(t, "a restart", func() bool { st, _ := s.StartTimes("crashy"); return len(st) >= 2 })
	s.Shutdown()
	n, _ := s.StartTimes("crashy")
	s.Start("crashy")
	time.Sleep(200 * time.Millisecond)
	if m, _ := s.StartTimes("crashy"); len(m) != len(n) {
		t.Errorf("started %d more times after Shutdown", len(m)-len(n))
	}
}

// logLines collects what the supervisor logs, from its goroutines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) has(line string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.lines, line)
}

func TestCrashLoopMessageNamesTheSignal(t *testing.T) {
	var log logLines
	s := New(Config{BaseDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond, ResetAfter: time.Minute, CrashLoop: 2, Logf: log.logf})
	s.Add(Service{Name: "doomed", Policy: Always, Start: shell("kill -KILL $$")})
	s.Start("doomed")
	want := []string{
		"doomed: killed by signal SIGKILL; restarting in 10ms",
		"doomed: crash loop: 2 exits in a row (last: killed by signal SIGKILL); still restarting",
	}
	waitFor(t, "the crash loop message", func() bool { return log.has(want[1]) })
	s.Shutdown()
	for _, w := range want {
		if !log.has(w) {
			t.Errorf("no log line %q in:\n%s", w, strings.Join(log.lines, "\n"))
		}
	}
}
