package seccomp

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv, set to a program file (or "none"), makes the test binary a
// child that installs the program and reports what a few calls return.
const childEnv = "KEEL_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if prog := os.Getenv(childEnv); prog != "" {
		os.Exit(child(prog, os.Getenv(childEnv+"_X32") != ""))
	}
	os.Exit(m.Run())
}

// child installs the program on its (locked) thread, as init does before
// exec, then makes each probed call on that thread.
func child(progFile string, x32 bool) int {
	runtime.LockOSThread()
	if progFile != "none" {
		prog, err := os.ReadFile(progFile)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Println("error: no_new_privs:", err)
			return 1
		}
		filter := make([]unix.SockFilter, len(prog)/InstructionSize)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&filter[0])), len(prog)), prog)
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
			fmt.Println("error: seccomp:", e)
			return 1
		}
	}
	if x32 {
		// getpid through the x32 ABI: the filter kills the process.
		unix.Syscall(0x40000000|unix.SYS_GETPID, 0, 0, 0)
		fmt.Println("x32=survived")
		return 0
	}
	report := func(name string, e syscall.Errno) {
		if e == 0 {
			fmt.Printf("%s=ok\n", name)
		} else {
			fmt.Printf("%s=%s\n", name, unix.ErrnoName(e))
		}
	}
	_, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	report("getpid", e)
	// The session keyring's id: any process may ask.
	session := -3 // KEY_SPEC_SESSION_KEYRING
	_, _, e = unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(session), 1)
	report("keyctl", e)
	// A UTS namespace for this thread alone; needs CAP_SYS_ADMIN, which
	// the test (root) has.
	_, _, e = unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUTS, 0, 0)
	report("unshare", e)
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, 0)
	report("socket-unix", e)
	if e == 0 {
		unix.Close(int(fd))
	}
	return 0
}

// runChild runs the test binary as a child under prog (nil: none).
func runChild(t *testing.T, prog []byte, x32 bool) (map[string]string, error) {
	t.Helper()
	file := "none"
	if prog != nil {
		file = filepath.Join(t.TempDir(), "seccomp.bpf")
		if err := os.WriteFile(file, prog, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+file)
	if x32 {
		cmd.Env = append(cmd.Env, childEnv+"_X32=1")
	}
	out, err := cmd.Output()
	got := map[string]string{}
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "error:") {
			t.Fatalf("child: %s", l)
		}
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	return got, err
}

// TestProgramOnTheRealKernel installs the default program compiled for
// this machine's architecture in a child process and checks what the
// kernel returns, against the same calls made without it.
func TestProgramOnTheRealKernel(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test needs root: the unconfined child must be able to unshare")
	}
	unconfined, err := runChild(t, nil, false)
	if err != nil {
		t.Fatalf("child without a filter: %v (%v)", err, unconfined)
	}
	for _, k := range []string{"getpid", "keyctl", "unshare", "socket-unix"} {
		if unconfined[k] != "ok" {
			t.Fatalf("without a filter, %s = %q: this kernel cannot tell a filter's refusal apart", k, unconfined[k])
		}
	}
	for _, c := range []struct {
		caps []string
		want map[string]string
	}{
		{none, map[string]string{"getpid": "ok", "socket-unix": "ok", "keyctl": "EPERM", "unshare": "EPERM"}},
		{sysAdmin, map[string]string{"getpid": "ok", "socket-unix": "ok", "keyctl": "EPERM", "unshare": "ok"}},
	} {
		got, err := runChild(t, compile(t, Default(), runtime.GOARCH, c.caps), false)
		if err != nil {
			t.Fatalf("%v: child: %v (%v)", c.caps, err, got)
		}
		for k, want := range c.want {
			if got[k] != want {
				t.Errorf("default profile for %v: %s = %q, want %q", c.caps, k, got[k], want)
			}
		}
	}
}

func TestX32CallKillsTheProcess(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatalf("the x32 ABI exists on amd64 only; this host is %s", runtime.GOARCH)
	}
	got, err := runChild(t, compile(t, Default(), "amd64", none), true)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child: err = %v, output %v; want it killed", err, got)
	}
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Errorf("child ended with %v, want killed by SIGSYS", ws)
	}
}
