package seccomp

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Return values of a filter (linux/seccomp.h).
const (
	retKillThread  = unix.SECCOMP_RET_KILL_THREAD
	retKillProcess = unix.SECCOMP_RET_KILL_PROCESS
	retTrap        = unix.SECCOMP_RET_TRAP
	retErrno       = unix.SECCOMP_RET_ERRNO
	retTrace       = unix.SECCOMP_RET_TRACE
	retLog         = unix.SECCOMP_RET_LOG
	retAllow       = unix.SECCOMP_RET_ALLOW
)

// Offsets in struct seccomp_data, and the halves of a 64-bit argument on
// the little-endian targets keel builds for.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// x32Bit marks a call through the x32 ABI on amd64 (__X32_SYSCALL_BIT).
const x32Bit = 0x40000000

// maxInstructions is the kernel's limit on a classic BPF program
// (BPF_MAXINSNS).
const maxInstructions = 4096

// minKernel is the oldest kernel keel's init runs on (clone3 into a
// cgroup, 5.7): a rule's includes.minKernel up to it always holds. A
// program is compiled before the kernel it will run on is known, so a
// later minimum cannot be honoured and is refused.
const minKernel = "5.7"

// InstructionSize is the size of one instruction (struct sock_filter) in
// a compiled program.
const InstructionSize = 8

// target describes an architecture's native system call ABI.
type target struct {
	name  string // keel's name, as in includes.arches
	audit uint32 // AUDIT_ARCH_*
	calls map[string]int
	x32   bool // amd64: refuse the x32 ABI, which shares the audit arch
}

func targetOf(name string) (target, error) {
	switch name {
	case "amd64":
		return target{name: name, audit: unix.AUDIT_ARCH_X86_64, calls: arch.X86_64.SyscallNames, x32: true}, nil
	case "arm64":
		// The table names call 79 after the kernel's generic
		// __NR3264_fstatat; arm64's own name for it, the one profiles
		// (and libseccomp) use, is newfstatat.
		calls := maps.Clone(arch.AARCH64.SyscallNames)
		delete(calls, "fstatat")
		calls["newfstatat"] = arch.AARCH64.SyscallNames["fstatat"]
		return target{name: name, audit: unix.AUDIT_ARCH_AARCH64, calls: calls}, nil
	}
	return target{}, fmt.Errorf("no seccomp compiler for architecture %q (amd64, arm64)", name)
}

// condRule is one alternative of a call's conditional rules: every
// condition holds → ret.
type condRule struct {
	args []Arg
	ret  uint32
}

// callRules are the rules that apply to one call number: the conditional
// ones are tried in profile order, the first that matches decides; else
// the unconditional rule's return, else the profile's default.
type callRules struct {
	conds    []condRule
	fallback *uint32
}

// Compile turns p into a seccomp program for a container of the target
// architecture (amd64 or arm64) holding the capabilities caps (CAP_*
// names): the raw struct sock_filter array that seccomp(2) installs, in
// the target's (little-endian) byte order. The same inputs give the same
// bytes.
//
// The program kills the process on a call through another ABI than the
// target's native one (i386 or x32 on amd64, arm32 on arm64); names the
// target has no call for are skipped, as runc does.
func Compile(p *Profile, archName string, caps []string) ([]byte, error) {
	t, err := targetOf(archName)
	if err != nil {
		return nil, err
	}
	def, err := returnValue(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	calls := map[int]*callRules{}
	for i, r := range p.Syscalls {
		if err := addRule(calls, t, caps, r); err != nil {
			return nil, fmt.Errorf("syscalls[%d]: %w", i, err)
		}
	}
	prog, err := assemble(t, calls, def)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assembling: %w", err)
	}
	if len(raw) > maxInstructions {
		return nil, fmt.Errorf("the program has %d instructions, more than the kernel's %d", len(raw), maxInstructions)
	}
	out := make([]byte, 0, len(raw)*InstructionSize)
	for _, ins := range raw {
		out = binary.LittleEndian.AppendUint16(out, ins.Op)
		out = append(out, ins.Jt, ins.Jf)
		out = binary.LittleEndian.AppendUint32(out, ins.K)
	}
	return out, nil
}

// returnValue is the filter's return value for an action.
func returnValue(a Action, errno *uint32) (uint32, error) {
	data := func(def uint32) (uint32, error) {
		if errno == nil {
			return def, nil
		}
		if *errno > 4095 {
			return 0, fmt.Errorf("errnoRet %d is not an errno (at most 4095)", *errno)
		}
		return *errno, nil
	}
	if errno != nil && a != ActErrno && a != ActTrace {
		return 0, fmt.Errorf("errnoRet is only valid with %s or %s, not %s", ActErrno, ActTrace, a)
	}
	switch a {
	case ActAllow:
		return retAllow, nil
	case ActErrno:
		e, err := data(uint32(unix.EPERM))
		return retErrno | e, err
	case ActKill, ActKillThread:
		return retKillThread, nil
	case ActKillProcess:
		return retKillProcess, nil
	case ActTrap:
		return retTrap, nil
	case ActTrace:
		e, err := data(0)
		return retTrace | e, err
	case ActLog:
		return retLog, nil
	case "":
		return 0, fmt.Errorf("action is required")
	}
	return 0, fmt.Errorf("unknown action %q (one of %s, %s, %s, %s, %s, %s, %s, %s)", a,
		ActAllow, ActErrno, ActKill, ActKillThread, ActKillProcess, ActTrap, ActTrace, ActLog)
}

// applies reports whether a rule's includes and excludes select a
// container of target t with caps.
func applies(r Rule, t target, caps []string) (bool, error) {
	if f := r.Includes; f != nil {
		for _, c := range f.Caps {
			if !slices.Contains(caps, c) {
				return false, nil
			}
		}
		if len(f.Arches) > 0 && !slices.Contains(f.Arches, t.name) {
			return false, nil
		}
		if f.MinKernel != "" {
			newer, err := kernelAfter(f.MinKernel, minKernel)
			if err != nil {
				return false, err
			}
			if newer {
				return false, fmt.Errorf("includes.minKernel %s: keel compiles profiles at build time and can only rely on kernel %s, which its init needs", f.MinKernel, minKernel)
			}
		}
	}
	if f := r.Excludes; f != nil {
		for _, c := range f.Caps {
			if slices.Contains(caps, c) {
				return false, nil
			}
		}
		if slices.Contains(f.Arches, t.name) {
			return false, nil
		}
		if f.MinKernel != "" {
			newer, err := kernelAfter(f.MinKernel, minKernel)
			if err != nil {
				return false, err
			}
			if !newer {
				return false, nil
			}
			return false, fmt.Errorf("excludes.minKernel %s: keel compiles profiles at build time and can only rely on kernel %s, which its init needs", f.MinKernel, minKernel)
		}
	}
	return true, nil
}

// kernelAfter reports whether version v ("major.minor") is later than base.
func kernelAfter(v, base string) (bool, error) {
	parse := func(s string) ([2]int, error) {
		maj, min, ok := strings.Cut(s, ".")
		a, err1 := strconv.Atoi(maj)
		b, err2 := strconv.Atoi(min)
		if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 {
			return [2]int{}, fmt.Errorf("minKernel %q: want MAJOR.MINOR", s)
		}
		return [2]int{a, b}, nil
	}
	x, err := parse(v)
	if err != nil {
		return false, err
	}
	y, err := parse(base)
	if err != nil {
		return false, err
	}
	return x[0] > y[0] || x[0] == y[0] && x[1] > y[1], nil
}

// addRule records rule r for every call it names that target t has.
func addRule(calls map[int]*callRules, t target, caps []string, r Rule) error {
	ok, err := applies(r, t, caps)
	if err != nil || !ok {
		return err
	}
	ret, err := returnValue(r.Action, r.ErrnoRet)
	if err != nil {
		return err
	}
	if len(r.Args) > 6 {
		return fmt.Errorf("%d argument conditions: a call has 6 arguments", len(r.Args))
	}
	for _, a := range r.Args {
		if a.Index > 5 {
			return fmt.Errorf("argument index %d: want 0 to 5", a.Index)
		}
		switch a.Op {
		case OpNotEqual, OpLessThan, OpLessEqual, OpEqualTo, OpGreaterEqual, OpGreaterThan, OpMaskedEqual:
		default:
			return fmt.Errorf("unknown operator %q (one of %s, %s, %s, %s, %s, %s, %s)", a.Op,
				OpNotEqual, OpLessThan, OpLessEqual, OpEqualTo, OpGreaterEqual, OpGreaterThan, OpMaskedEqual)
		}
	}
	// Conditions on one argument index repeated in a rule are
	// alternatives, not all required: runc splits such a rule in one
	// rule per condition, and so does keel.
	alternatives := [][]Arg{r.Args}
	seen := map[uint]bool{}
	for _, a := range r.Args {
		if seen[a.Index] {
			alternatives = nil
			for _, a := range r.Args {
				alternatives = append(alternatives, []Arg{a})
			}
			break
		}
		seen[a.Index] = true
	}
	names := r.Names
	if r.Name != "" {
		names = append(slices.Clone(names), r.Name)
	}
	if len(names) == 0 {
		return fmt.Errorf("names: a rule must name at least one call")
	}
	for _, name := range names {
		nr, ok := t.calls[name]
		if !ok {
			continue
		}
		c := calls[nr]
		if c == nil {
			c = &callRules{}
			calls[nr] = c
		}
		if len(r.Args) == 0 {
			if c.fallback != nil && *c.fallback != ret {
				return fmt.Errorf("%s: two rules without conditions with different actions", name)
			}
			c.fallback = &ret
			continue
		}
		for _, alt := range alternatives {
			c.conds = append(c.conds, condRule{args: alt, ret: ret})
		}
	}
	return nil
}

// assemble lays the program out:
//
//	a call from another ABI than the target's → kill the process
//	then, by ascending call number, each run of consecutive numbers
//	with the same unconditional return, and each call with argument
//	conditions; a number in none of them → the default return
func assemble(t target, calls map[int]*callRules, def uint32) ([]bpf.Instruction, error) {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: t.audit, SkipTrue: 1},
		bpf.RetConstant{Val: retKillProcess},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	}
	if t.x32 {
		// Numbers with the top bit set are no calls at all (the default
		// return); below them, the x32 bit means the x32 ABI.
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x80000000, SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: x32Bit, SkipFalse: 1},
			bpf.RetConstant{Val: retKillProcess},
		)
	}
	numbers := make([]int, 0, len(calls))
	for nr := range calls {
		numbers = append(numbers, nr)
	}
	slices.Sort(numbers)

	// Runs of unconditional returns: [lo, hi] → ret.
	type run struct {
		lo, hi int
		ret    uint32
	}
	var pending *run
	flush := func() {
		if pending == nil {
			return
		}
		// nr > hi → the next run; lo ≤ nr ≤ hi → ret; else (a gap
		// between runs) → the default.
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(pending.hi), SkipTrue: 3},
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(pending.lo), SkipFalse: 1},
			bpf.RetConstant{Val: pending.ret},
			bpf.RetConstant{Val: def},
		)
		pending = nil
	}
	for _, nr := range numbers {
		c := calls[nr]
		ret := def
		if c.fallback != nil {
			ret = *c.fallback
		}
		if len(c.conds) == 0 {
			if ret == def {
				continue
			}
			if pending != nil && pending.hi == nr-1 && pending.ret == ret {
				pending.hi = nr
				continue
			}
			flush()
			pending = &run{lo: nr, hi: nr, ret: ret}
			continue
		}
		flush()
		block, err := conditions(c.conds, ret)
		if err != nil {
			return nil, fmt.Errorf("call %d: %w", nr, err)
		}
		// nr > this call → past the block; nr == call → the block;
		// else (a gap) → the default.
		past := len(block) + 2
		if past <= 255 {
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(nr), SkipTrue: uint8(past)})
		} else {
			prog = append(prog,
				bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(nr), SkipFalse: 1},
				bpf.Jump{Skip: uint32(past)},
			)
		}
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(nr), SkipTrue: 1},
			bpf.RetConstant{Val: def},
		)
		prog = append(prog, block...)
	}
	flush()
	return append(prog, bpf.RetConstant{Val: def}), nil
}

// fail marks a jump to the next alternative, patched by conditions.
const fail = 0xff

// conditions compiles a call's conditional rules, tried in order, and
// the return when none matches.
func conditions(rules []condRule, otherwise uint32) ([]bpf.Instruction, error) {
	var out []bpf.Instruction
	for _, r := range rules {
		var alt []bpf.Instruction
		for _, a := range r.args {
			alt = append(alt, compare(a)...)
		}
		alt = append(alt, bpf.RetConstant{Val: r.ret})
		// A failed condition goes on with the next alternative: the
		// instruction after this one's return.
		for i, ins := range alt {
			j, ok := ins.(bpf.JumpIf)
			if !ok {
				continue
			}
			skip := len(alt) - i - 1
			if skip > 255 {
				return nil, fmt.Errorf("a rule's conditions are too long to jump over")
			}
			if j.SkipTrue == fail {
				j.SkipTrue = uint8(skip)
			}
			if j.SkipFalse == fail {
				j.SkipFalse = uint8(skip)
			}
			alt[i] = j
		}
		out = append(out, alt...)
	}
	return append(out, bpf.RetConstant{Val: otherwise}), nil
}

// compare tests one 64-bit argument against a condition: it falls
// through when the condition holds and jumps to fail when not.
func compare(a Arg) []bpf.Instruction {
	lo := bpf.LoadAbsolute{Off: offArgs + 8*uint32(a.Index), Size: 4}
	hi := bpf.LoadAbsolute{Off: offArgs + 8*uint32(a.Index) + 4, Size: 4}
	vlo, vhi := uint32(a.Value), uint32(a.Value>>32)
	jump := func(c bpf.JumpTest, v uint32, t, f uint8) bpf.Instruction {
		return bpf.JumpIf{Cond: c, Val: v, SkipTrue: t, SkipFalse: f}
	}
	switch a.Op {
	case OpEqualTo:
		return []bpf.Instruction{hi, jump(bpf.JumpEqual, vhi, 0, fail), lo, jump(bpf.JumpEqual, vlo, 0, fail)}
	case OpNotEqual:
		return []bpf.Instruction{hi, jump(bpf.JumpEqual, vhi, 0, 2), lo, jump(bpf.JumpEqual, vlo, fail, 0)}
	case OpGreaterThan:
		return []bpf.Instruction{hi, jump(bpf.JumpGreaterThan, vhi, 3, 0), jump(bpf.JumpEqual, vhi, 0, fail), lo, jump(bpf.JumpGreaterThan, vlo, 0, fail)}
	case OpGreaterEqual:
		return []bpf.Instruction{hi, jump(bpf.JumpGreaterThan, vhi, 3, 0), jump(bpf.JumpEqual, vhi, 0, fail), lo, jump(bpf.JumpGreaterOrEqual, vlo, 0, fail)}
	case OpLessThan:
		return []bpf.Instruction{hi, jump(bpf.JumpGreaterThan, vhi, fail, 0), jump(bpf.JumpEqual, vhi, 0, 2), lo, jump(bpf.JumpGreaterOrEqual, vlo, fail, 0)}
	case OpLessEqual:
		return []bpf.Instruction{hi, jump(bpf.JumpGreaterThan, vhi, fail, 0), jump(bpf.JumpEqual, vhi, 0, 2), lo, jump(bpf.JumpGreaterThan, vlo, fail, 0)}
	default: // OpMaskedEqual, checked by addRule
		mlo, mhi := uint32(a.Value), uint32(a.Value>>32)
		dlo, dhi := uint32(a.ValueTwo), uint32(a.ValueTwo>>32)
		return []bpf.Instruction{
			hi, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mhi}, jump(bpf.JumpEqual, dhi, 0, fail),
			lo, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mlo}, jump(bpf.JumpEqual, dlo, 0, fail),
		}
	}
}
