package seccomp

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

var (
	none     []string
	sysAdmin = []string{"CAP_SYS_ADMIN"}
)

func compile(t *testing.T, p *Profile, archName string, caps []string) []byte {
	t.Helper()
	prog, err := Compile(p, archName, caps)
	if err != nil {
		t.Fatalf("compiling for %s %v: %v", archName, caps, err)
	}
	return prog
}

func TestCompileIsDeterministic(t *testing.T) {
	for _, a := range []string{"amd64", "arm64"} {
		for _, caps := range [][]string{none, sysAdmin, {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME"}} {
			first := compile(t, Default(), a, caps)
			second := compile(t, Default(), a, caps)
			if !bytes.Equal(first, second) {
				t.Errorf("%s %v: two compilations differ", a, caps)
			}
			if len(first)%InstructionSize != 0 || len(first) == 0 {
				t.Errorf("%s %v: %d bytes is not a whole number of instructions", a, caps, len(first))
			}
			t.Logf("%s %v: %d instructions, %d bytes", a, caps, len(first)/InstructionSize, len(first))
		}
	}
	if bytes.Equal(compile(t, Default(), "amd64", none), compile(t, Default(), "amd64", sysAdmin)) {
		t.Error("CAP_SYS_ADMIN does not change the default program")
	}
	if bytes.Equal(compile(t, Default(), "amd64", none), compile(t, Default(), "arm64", none)) {
		t.Error("amd64 and arm64 get the same program")
	}
}

// machine runs a compiled program in x/net/bpf's interpreter, an
// implementation independent of the compiler.
type machine struct {
	t     *testing.T
	vm    *bpf.VM
	audit uint32
	calls map[string]int
}

func newMachine(t *testing.T, prog []byte, archName string) *machine {
	t.Helper()
	var raw []bpf.RawInstruction
	for i := 0; i < len(prog); i += InstructionSize {
		raw = append(raw, bpf.RawInstruction{
			Op: binary.LittleEndian.Uint16(prog[i:]), Jt: prog[i+2], Jf: prog[i+3],
			K: binary.LittleEndian.Uint32(prog[i+4:]),
		})
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the program has instructions x/net/bpf does not know")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := targetOf(archName)
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, vm: vm, audit: tgt.audit, calls: tgt.calls}
}

// run evaluates a call by number with the given audit arch and arguments.
func (m *machine) run(audit, nr uint32, args ...uint64) uint32 {
	m.t.Helper()
	// struct seccomp_data as the kernel lays it out on a little-endian
	// machine, each 32-bit word stored big-endian because that is how
	// the interpreter loads words.
	in := make([]byte, 64)
	binary.BigEndian.PutUint32(in[offNr:], nr)
	binary.BigEndian.PutUint32(in[offArch:], audit)
	for i, a := range args {
		binary.BigEndian.PutUint32(in[offArgs+8*i:], uint32(a))
		binary.BigEndian.PutUint32(in[offArgs+8*i+4:], uint32(a>>32))
	}
	ret, err := m.vm.Run(in)
	if err != nil {
		m.t.Fatal(err)
	}
	return uint32(ret)
}

// call evaluates a call by name on the machine's own architecture.
func (m *machine) call(name string, args ...uint64) uint32 {
	m.t.Helper()
	nr, ok := m.calls[name]
	if !ok {
		m.t.Fatalf("no call %s", name)
	}
	return m.run(m.audit, uint32(nr), args...)
}

const (
	allowed = retAllow
	eperm   = retErrno | uint32(unix.EPERM)
	enosys  = retErrno | uint32(unix.ENOSYS)
	killed  = retKillProcess
)

func TestDefaultProfileDecisions(t *testing.T) {
	type check struct {
		call string
		args []uint64
		want uint32
	}
	const newNS = unix.CLONE_NEWNS | unix.CLONE_NEWUSER
	threadFlags := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM)
	common := []check{
		{"getpid", nil, allowed},
		{"read", nil, allowed},
		{"execve", nil, allowed},
		{"capset", nil, allowed},
		{"setresuid", nil, allowed},
		{"prctl", nil, allowed},
		{"seccomp", nil, allowed},
		{"ptrace", nil, allowed},
		{"keyctl", nil, eperm},
		{"add_key", nil, eperm},
		{"request_key", nil, eperm},
		{"kexec_load", nil, eperm},
		{"userfaultfd", nil, eperm},
		{"pivot_root", nil, eperm},
		{"swapon", nil, eperm},
		{"init_module", nil, eperm},
		{"reboot", nil, eperm},
		{"clock_settime", nil, eperm},
		{"clone", []uint64{threadFlags}, allowed},
		{"socket", []uint64{unix.AF_UNIX}, allowed},
		{"socket", []uint64{unix.AF_INET6}, allowed},
		{"socket", []uint64{unix.AF_NETLINK}, allowed},
		{"socket", []uint64{unix.AF_PACKET}, allowed},
		{"socket", []uint64{unix.AF_VSOCK}, eperm},
		{"socket", []uint64{unix.AF_DECnet}, eperm},
		// The high half counts: the kernel reads an int, the filter all
		// 64 bits, so a padded AF_INET is refused, not let through.
		{"socket", []uint64{1<<32 | unix.AF_INET}, eperm},
		{"personality", []uint64{0}, allowed},
		{"personality", []uint64{0xffffffff}, allowed},
		{"personality", []uint64{0x0040000}, eperm}, // ADDR_NO_RANDOMIZE
		{"personality", []uint64{1<<32 | 0}, eperm},
	}
	byCaps := map[string][]check{
		"none": {
			{"mount", nil, eperm},
			{"umount2", nil, eperm},
			{"unshare", []uint64{unix.CLONE_NEWNS}, eperm},
			{"setns", nil, eperm},
			{"bpf", nil, eperm},
			{"clone", []uint64{threadFlags | unix.CLONE_NEWNET}, eperm},
			{"clone", []uint64{newNS}, eperm},
			{"clone3", nil, enosys},
		},
		"CAP_SYS_ADMIN": {
			{"mount", nil, allowed},
			{"umount2", nil, allowed},
			{"unshare", []uint64{unix.CLONE_NEWNS}, allowed},
			{"setns", nil, allowed},
			{"bpf", nil, allowed},
			{"clone", []uint64{newNS}, allowed},
			{"clone3", nil, allowed},
		},
	}
	for _, a := range []string{"amd64", "arm64"} {
		for capName, checks := range byCaps {
			caps := none
			if capName != "none" {
				caps = []string{capName}
			}
			m := newMachine(t, compile(t, Default(), a, caps), a)
			for _, c := range append(common, checks...) {
				if got := m.call(c.call, c.args...); got != c.want {
					t.Errorf("%s %s: %s%v = %#x, want %#x", a, capName, c.call, c.args, got, c.want)
				}
			}
			// Every name of Docker's allow-list the architecture has.
			for _, name := range Default().Syscalls[0].Names {
				if _, ok := m.calls[name]; ok && m.call(name) != allowed {
					t.Errorf("%s %s: %s is refused", a, capName, name)
				}
			}
			// Numbers past the table, and "no call" (-1).
			if got := m.run(m.audit, 4000); got != eperm {
				t.Errorf("%s: call 4000 = %#x, want EPERM", a, got)
			}
			if got := m.run(m.audit, 0xffffffff); got != eperm {
				t.Errorf("%s: call -1 = %#x, want EPERM", a, got)
			}
		}
	}
}

func TestForeignABIsAreKilled(t *testing.T) {
	amd := newMachine(t, compile(t, Default(), "amd64", none), "amd64")
	if got := amd.run(unix.AUDIT_ARCH_I386, 20); got != killed {
		t.Errorf("an i386 call on amd64 = %#x, want kill", got)
	}
	getpid := uint32(arch.X32.SyscallNames["getpid"])
	if got := amd.run(amd.audit, x32Bit|getpid); got != killed {
		t.Errorf("an x32 getpid on amd64 = %#x, want kill", got)
	}
	arm := newMachine(t, compile(t, Default(), "arm64", none), "arm64")
	if got := arm.run(unix.AUDIT_ARCH_ARM, 20); got != killed {
		t.Errorf("an arm32 call on arm64 = %#x, want kill", got)
	}
	if got := arm.run(unix.AUDIT_ARCH_X86_64, 39); got != killed {
		t.Errorf("an amd64 call under the arm64 program = %#x, want kill", got)
	}
}

func TestCustomProfiles(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	p := &Profile{
		DefaultAction: ActAllow,
		Syscalls: []Rule{
			{Names: []string{"uname"}, Action: ActErrno, ErrnoRet: u(uint32(unix.EACCES))},
			{Name: "getppid", Action: ActKillProcess},
			{Names: []string{"kill"}, Action: ActErrno, Args: []Arg{{Index: 1, Value: 9, Op: OpEqualTo}}},
			// One index twice: alternatives, as runc.
			{Names: []string{"dup"}, Action: ActErrno, Args: []Arg{{Index: 0, Value: 5, Op: OpEqualTo}, {Index: 0, Value: 6, Op: OpEqualTo}}},
			{Names: []string{"lseek"}, Action: ActErrno, Args: []Arg{{Index: 2, Value: 1, Op: OpGreaterThan}, {Index: 1, Value: 100, Op: OpLessEqual}}},
			{Names: []string{"pread64"}, Action: ActLog, Args: []Arg{{Index: 3, Value: 1 << 33, Op: OpGreaterEqual}}},
			{Names: []string{"pwrite64"}, Action: ActTrap, Args: []Arg{{Index: 3, Value: 7, Op: OpNotEqual}}},
			{Names: []string{"mmap"}, Action: ActErrno, Args: []Arg{{Index: 2, Value: 0x4, ValueTwo: 0x4, Op: OpMaskedEqual}}},
			{Names: []string{"not_a_call_anywhere"}, Action: ActErrno},
			{Names: []string{"getpid"}, Action: ActErrno, Includes: &Filter{Arches: []string{"arm64"}}},
			{Names: []string{"gettid"}, Action: ActErrno, Includes: &Filter{Caps: []string{"CAP_NET_ADMIN"}}},
		},
	}
	m := newMachine(t, compile(t, p, "amd64", none), "amd64")
	for _, c := range []struct {
		call string
		args []uint64
		want uint32
	}{
		{"uname", nil, retErrno | uint32(unix.EACCES)},
		{"getppid", nil, killed},
		{"kill", []uint64{1, 9}, eperm},
		{"kill", []uint64{1, 15}, allowed},
		{"dup", []uint64{5}, eperm},
		{"dup", []uint64{6}, eperm},
		{"dup", []uint64{7}, allowed},
		{"lseek", []uint64{0, 100, 2}, eperm},
		{"lseek", []uint64{0, 101, 2}, allowed},
		{"lseek", []uint64{0, 100, 1}, allowed},
		{"lseek", []uint64{0, 0, 1 << 40}, eperm},
		{"pread64", []uint64{0, 0, 0, 1 << 33}, retLog},
		{"pread64", []uint64{0, 0, 0, 1<<33 - 1}, allowed},
		{"pwrite64", []uint64{0, 0, 0, 7}, allowed},
		{"pwrite64", []uint64{0, 0, 0, 1<<32 | 7}, retTrap},
		{"mmap", []uint64{0, 0, unix.PROT_EXEC | unix.PROT_READ}, eperm},
		{"mmap", []uint64{0, 0, unix.PROT_READ}, allowed},
		{"getpid", nil, allowed},
		{"gettid", nil, allowed},
	} {
		if got := m.call(c.call, c.args...); got != c.want {
			t.Errorf("%s%v = %#x, want %#x", c.call, c.args, got, c.want)
		}
	}
	arm := newMachine(t, compile(t, p, "arm64", []string{"CAP_NET_ADMIN"}), "arm64")
	if got := arm.call("getpid"); got != eperm {
		t.Errorf("arm64 getpid = %#x, want EPERM (an arm64-only rule)", got)
	}
	if got := arm.call("gettid"); got != eperm {
		t.Errorf("gettid with CAP_NET_ADMIN = %#x, want EPERM", got)
	}
}

func TestLongConditionBlocks(t *testing.T) {
	// Enough alternatives for one call that jumping over its block needs
	// an unconditional jump.
	p := &Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Names: []string{"read", "write", "close"}, Action: ActAllow}}}
	for v := range uint64(100) {
		p.Syscalls = append(p.Syscalls, Rule{Names: []string{"ioctl"}, Action: ActAllow, Args: []Arg{{Index: 1, Value: v, Op: OpEqualTo}}})
	}
	m := newMachine(t, compile(t, p, "amd64", none), "amd64")
	for _, c := range []struct {
		call string
		args []uint64
		want uint32
	}{
		{"ioctl", []uint64{0, 0}, allowed},
		{"ioctl", []uint64{0, 99}, allowed},
		{"ioctl", []uint64{0, 100}, eperm},
		{"read", nil, allowed},
		{"close", nil, allowed},
		{"getpid", nil, eperm},
		{"mmap", nil, eperm},
	} {
		if got := m.call(c.call, c.args...); got != c.want {
			t.Errorf("%s%v = %#x, want %#x", c.call, c.args, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	for _, c := range []struct {
		name string
		p    Profile
		want string
	}{
		{"no default", Profile{}, "defaultAction: action is required"},
		{"bad action", Profile{DefaultAction: "SCMP_ACT_MAYBE"}, `unknown action "SCMP_ACT_MAYBE"`},
		{"notify", Profile{DefaultAction: "SCMP_ACT_NOTIFY"}, `unknown action "SCMP_ACT_NOTIFY"`},
		{"errno on allow", Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Names: []string{"read"}, Action: ActAllow, ErrnoRet: u(1)}}}, "errnoRet is only valid"},
		{"big errno", Profile{DefaultAction: ActErrno, DefaultErrnoRet: u(5000)}, "errnoRet 5000 is not an errno"},
		{"index", Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Names: []string{"read"}, Action: ActAllow, Args: []Arg{{Index: 6, Op: OpEqualTo}}}}}, "syscalls[0]: argument index 6"},
		{"operator", Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Names: []string{"read"}, Action: ActAllow, Args: []Arg{{Op: "SCMP_CMP_LIKE"}}}}}, `unknown operator "SCMP_CMP_LIKE"`},
		{"no names", Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Action: ActAllow}}}, "must name at least one call"},
		{"conflict", Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Names: []string{"read"}, Action: ActAllow}, {Names: []string{"read"}, Action: ActKillProcess}}}, "read: two rules without conditions"},
		{"new kernel", Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Names: []string{"read"}, Action: ActAllow, Includes: &Filter{MinKernel: "6.9"}}}}, "includes.minKernel 6.9"},
		{"bad kernel", Profile{DefaultAction: ActErrno, Syscalls: []Rule{{Names: []string{"read"}, Action: ActAllow, Includes: &Filter{MinKernel: "six"}}}}, `minKernel "six": want MAJOR.MINOR`},
	} {
		_, err := Compile(&c.p, "amd64", none)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := Compile(Default(), "riscv64", none); err == nil || !strings.Contains(err.Error(), `architecture "riscv64"`) {
		t.Errorf("riscv64: err = %v", err)
	}
}

// TestDefaultRefusesWithEveryCapability checks docs/seccomp.md's list of
// calls the default profile refuses whatever the container holds.
func TestDefaultRefusesWithEveryCapability(t *testing.T) {
	all := []string{
		"CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_SYS_BOOT", "CAP_SYS_CHROOT", "CAP_SYS_MODULE",
		"CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG",
		"CAP_SYS_NICE", "CAP_SYSLOG", "CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN",
	}
	refused := []string{
		"keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "userfaultfd",
		"pivot_root", "swapon", "swapoff", "move_pages", "migrate_pages",
		"io_uring_setup", "io_uring_enter", "io_uring_register", "nfsservctl",
	}
	for _, a := range []string{"amd64", "arm64"} {
		m := newMachine(t, compile(t, Default(), a, all), a)
		for _, name := range refused {
			if _, ok := m.calls[name]; !ok {
				continue // nfsservctl is gone from arm64
			}
			if got := m.call(name); got != eperm {
				t.Errorf("%s with every capability: %s = %#x, want EPERM", a, name, got)
			}
		}
		for _, name := range []string{"mount", "unshare", "setns", "reboot", "init_module", "open_by_handle_at", "clock_settime", "iopl", "bpf"} {
			if _, ok := m.calls[name]; ok && m.call(name) != allowed {
				t.Errorf("%s with every capability: %s is refused", a, name)
			}
		}
	}
}

// TestArchitecturesAgree checks that a call both architectures have gets
// the same answer on each, and that the calls behind stat(2) are allowed:
// arm64's table names its call 79 differently from the kernel's arm64 ABI.
func TestArchitecturesAgree(t *testing.T) {
	amd := newMachine(t, compile(t, Default(), "amd64", none), "amd64")
	arm := newMachine(t, compile(t, Default(), "arm64", none), "arm64")
	if got := arm.run(arm.audit, 79); got != allowed {
		t.Errorf("arm64 call 79 (newfstatat) = %#x, want allowed", got)
	}
	for _, m := range []*machine{amd, arm} {
		for _, name := range []string{"newfstatat", "fstat", "statx", "openat", "mmap", "fcntl", "lseek"} {
			if got := m.call(name); got != allowed {
				t.Errorf("%#x: %s = %#x, want allowed", m.audit, name, got)
			}
		}
	}
	for name := range arm.calls {
		if _, ok := amd.calls[name]; !ok {
			continue
		}
		if a, b := amd.call(name), arm.call(name); a != b {
			t.Errorf("%s: amd64 %#x, arm64 %#x", name, a, b)
		}
	}
}
