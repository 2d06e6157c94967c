// probe reports what it sees from inside a container, one key=value per
// line, for the runtime's integration tests.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	host, _ := os.Hostname()
	fmt.Printf("pid=%d\n", os.Getpid())
	fmt.Printf("hostname=%s\n", host)
	fmt.Printf("uid=%d\n", os.Getuid())
	fmt.Printf("gid=%d\n", os.Getgid())
	groups, _ := os.Getgroups()
	fmt.Printf("groups=%v\n", groups)
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		for _, k := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
			if v, ok := strings.CutPrefix(l, k+":"); ok {
				fmt.Printf("%s=%s\n", k, strings.TrimSpace(v))
			}
		}
	}
	err := os.WriteFile("/probe-write", []byte("x"), 0o644)
	fmt.Printf("rootwrite=%v\n", err == nil)
	if b, err := os.ReadFile("/bound/hello"); err == nil {
		fmt.Printf("bind=%s\n", strings.TrimSpace(string(b)))
	}
	cg, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(string(cg), "\n") {
		if strings.HasPrefix(l, "0::") {
			fmt.Printf("cgroup=%s\n", l)
		}
	}
	if len(os.Args) > 1 {
		fmt.Printf("arg=%s\n", os.Args[1])
	}
	fmt.Printf("env=%s\n", os.Getenv("PROBE"))
	wd, _ := os.Getwd()
	fmt.Printf("cwd=%s\n", wd)
	_, err = os.Stat("/dev/null")
	fmt.Printf("devnull=%v\n", err == nil)
	if os.Getenv("PROBE_KEYCTL") != "" {
		// The session keyring's id: any process may ask, unless seccomp
		// refuses the call.
		sessionKeyring := -3
		_, _, e := syscall.RawSyscall(syscall.SYS_KEYCTL, 0 /* KEYCTL_GET_KEYRING_ID */, uintptr(sessionKeyring), 1)
		fmt.Printf("keyctl=%v\n", e)
	}
	if p := os.Getenv("PROBE_READ"); p != "" {
		b, err := os.ReadFile(p)
		fmt.Printf("read=%s%v\n", strings.TrimSpace(string(b)), errText(err))
	}
	if p := os.Getenv("PROBE_MOUNT"); p != "" {
		fmt.Printf("mount=%v\n", syscall.Mount("tmpfs", p, "tmpfs", 0, "size=1m"))
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " " + err.Error()
}
