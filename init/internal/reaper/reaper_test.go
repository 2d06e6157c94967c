package reaper

import (
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// run starts argv through r and returns how it ended, after kill (if
// set) was sent to it.
func run(t *testing.T, r *Reaper, kill unix.Signal, argv ...string) Status {
	t.Helper()
	pid, done, err := r.Spawn(func() (int, error) {
		c := exec.Command(argv[0], argv[1:]...)
		if err := c.Start(); err != nil {
			return 0, err
		}
		pid := c.Process.Pid
		c.Process.Release()
		return pid, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kill != 0 {
		if err := unix.Kill(pid, kill); err != nil {
			t.Fatal(err)
		}
	}
	return <-done
}

func TestStatusReadsAsASentence(t *testing.T) {
	r := New(false, nil)
	for _, c := range []struct {
		argv []string
		kill unix.Signal
		want string
		code int
	}{
		{[]string{"/bin/sh", "-c", "exit 3"}, 0, "exit status 3", 3},
		{[]string{"/bin/sleep", "100"}, unix.SIGKILL, "killed by signal SIGKILL", 137},
		{[]string{"/bin/sleep", "100"}, unix.SIGTERM, "killed by signal SIGTERM", 143},
	} {
		st := run(t, r, c.kill, c.argv...)
		if got := st.String(); got != c.want || st.Code() != c.code {
			t.Errorf("%v, signal %d: %q, code %d; want %q, code %d", c.argv, c.kill, got, st.Code(), c.want, c.code)
		}
	}
}

func TestStatusCoreDumpAndUnnamedSignal(t *testing.T) {
	// The kernel's wait status: signal in the low 7 bits, 0x80 for a core.
	for ws, want := range map[unix.WaitStatus]string{
		unix.WaitStatus(unix.SIGSEGV) | 0x80: "killed by signal SIGSEGV (core dumped)",
		unix.WaitStatus(40):                  "killed by signal 40",
	} {
		if got := (Status{Status: ws}).String(); got != want {
			t.Errorf("wait status %#x: %q, want %q", int(ws), got, want)
		}
	}
}
