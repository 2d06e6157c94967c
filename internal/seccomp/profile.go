// Package seccomp holds keel's container seccomp policies and compiles
// them, at build time, to the classic BPF programs init installs: keel's
// default profile (Docker's default policy) as Go data, custom profiles in
// Docker's JSON format, and a compiler for amd64 and arm64.
//
// Only the builder imports this package: init reads the compiled program
// and installs it with seccomp(2), so it links no policy or compiler code.
package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Action is what a rule does with a matching call, in libseccomp's names.
type Action string

// The actions a profile may use. SCMP_ACT_NOTIFY is refused: it needs a
// user-space listener, which keel does not run.
const (
	ActAllow       Action = "SCMP_ACT_ALLOW"
	ActErrno       Action = "SCMP_ACT_ERRNO"
	ActKill        Action = "SCMP_ACT_KILL" // the thread, as libseccomp
	ActKillThread  Action = "SCMP_ACT_KILL_THREAD"
	ActKillProcess Action = "SCMP_ACT_KILL_PROCESS"
	ActTrap        Action = "SCMP_ACT_TRAP"
	ActTrace       Action = "SCMP_ACT_TRACE"
	ActLog         Action = "SCMP_ACT_LOG"
)

// Operator compares a system call argument, in libseccomp's names.
type Operator string

// The comparisons of a rule's arguments. Each compares all 64 bits of the
// argument, as libseccomp does on 64-bit architectures.
const (
	OpNotEqual     Operator = "SCMP_CMP_NE"
	OpLessThan     Operator = "SCMP_CMP_LT"
	OpLessEqual    Operator = "SCMP_CMP_LE"
	OpEqualTo      Operator = "SCMP_CMP_EQ"
	OpGreaterEqual Operator = "SCMP_CMP_GE"
	OpGreaterThan  Operator = "SCMP_CMP_GT"
	OpMaskedEqual  Operator = "SCMP_CMP_MASKED_EQ" // (arg & Value) == ValueTwo
)

// Profile is a seccomp profile in Docker's JSON format (moby's
// profiles/seccomp), which extends the OCI runtime-spec's linux.seccomp
// with per-rule conditions on capabilities, architectures and kernel.
type Profile struct {
	DefaultAction   Action  `json:"defaultAction"`
	DefaultErrnoRet *uint32 `json:"defaultErrnoRet,omitempty"`
	// Architectures and ArchMap are accepted for compatibility and not
	// used: keel's programs allow only the target's native ABI and kill
	// a call made through any other (x32, i386 or arm32 compat).
	Architectures []string  `json:"architectures,omitempty"`
	ArchMap       []ArchMap `json:"archMap,omitempty"`
	// Flags and a listener cannot be carried by a compiled program:
	// Parse refuses them.
	Flags            []string `json:"flags,omitempty"`
	ListenerPath     string   `json:"listenerPath,omitempty"`
	ListenerMetadata string   `json:"listenerMetadata,omitempty"`
	Syscalls         []Rule   `json:"syscalls"`
}

// ArchMap lists an architecture and its sub-architectures.
type ArchMap struct {
	Arch      string   `json:"architecture"`
	SubArches []string `json:"subArchitectures"`
}

// Rule applies Action to the system calls it names, when the container
// matches Includes and not Excludes and the call's arguments match Args.
type Rule struct {
	Names    []string `json:"names,omitempty"`
	Name     string   `json:"name,omitempty"` // older profiles' single name
	Action   Action   `json:"action"`
	ErrnoRet *uint32  `json:"errnoRet,omitempty"`
	Args     []Arg    `json:"args,omitempty"`
	Comment  string   `json:"comment,omitempty"`
	Includes *Filter  `json:"includes,omitempty"`
	Excludes *Filter  `json:"excludes,omitempty"`
}

// Arg is one argument condition of a rule.
type Arg struct {
	Index    uint     `json:"index"`
	Value    uint64   `json:"value"`
	ValueTwo uint64   `json:"valueTwo,omitempty"`
	Op       Operator `json:"op"`
}

// Filter selects containers: all of Caps held, the target among Arches,
// the kernel at least MinKernel ("4.8").
type Filter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// MaxProfileSize bounds a custom profile file: Docker's default profile,
// the largest in common use, is under 20 KiB.
const MaxProfileSize = 1 << 20

// Parse decodes a profile in Docker's JSON format. Unknown keys are
// errors, so a misspelt key cannot silently drop a rule.
func Parse(data []byte) (*Profile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a seccomp profile in Docker's JSON format: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a seccomp profile in Docker's JSON format: data after the profile")
	}
	switch {
	case p.DefaultAction == "":
		return nil, errors.New("defaultAction is required")
	case len(p.Flags) > 0:
		return nil, fmt.Errorf("flags %q: keel installs every filter without flags; remove them", p.Flags)
	case p.ListenerPath != "" || p.ListenerMetadata != "":
		return nil, errors.New("listenerPath: SCMP_ACT_NOTIFY listeners are not supported; remove it")
	}
	return &p, nil
}

// ReadFile reads and parses the profile at rel, a path relative to dir
// that must stay inside dir (symbolic links included) and name a regular
// file of at most MaxProfileSize bytes.
func ReadFile(dir, rel string) (*Profile, error) {
	if !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("seccomp profile %q: want a path inside %s, relative to it", rel, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %q: %w", rel, err)
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO must not wait for a writer; the type
	// check below refuses it.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %q: %w", rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %q: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seccomp profile %q: not a regular file (%s)", rel, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %q: %w", rel, err)
	}
	if len(data) > MaxProfileSize {
		return nil, fmt.Errorf("seccomp profile %q: larger than %d bytes", rel, MaxProfileSize)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %q: %w", rel, err)
	}
	return p, nil
}
