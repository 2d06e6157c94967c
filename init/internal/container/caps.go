package container

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

type capMask [2]uint32

func maskOf(names []string) (capMask, error) {
	var m capMask
	for _, n := range names {
		c, ok := layout.CapabilityNumber(n)
		if !ok {
			return m, fmt.Errorf("unknown capability %s", n)
		}
		m[c/32] |= 1 << (c % 32)
	}
	return m, nil
}

func (m capMask) has(c uint) bool { return m[c/32]&(1<<(c%32)) != 0 }

// lastCap is the highest capability the running kernel knows.
func lastCap() uint {
	var n uint
	if _, err := fmt.Sscan(readFirstLine("/proc/sys/kernel/cap_last_cap"), &n); err != nil {
		return unix.CAP_LAST_CAP
	}
	return n
}

// setCredentials drops to the process's user with exactly its configured
// capabilities, on the calling (locked) thread.
func setCredentials(p *specs.Process) error {
	var caps specs.LinuxCapabilities
	if p.Capabilities != nil {
		caps = *p.Capabilities
	}
	bounding, err := maskOf(caps.Bounding)
	if err != nil {
		return err
	}
	sets := [4]capMask{}
	for i, names := range [][]string{caps.Effective, caps.Permitted, caps.Inheritable, caps.Ambient} {
		if sets[i], err = maskOf(names); err != nil {
			return err
		}
	}
	eff, perm, inh, amb := sets[0], sets[1], sets[2], sets[3]

	// Keep permitted capabilities across setuid; capset below trims them.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	for c := uint(0); c <= lastCap(); c++ {
		if !bounding.has(c) {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
			}
		}
	}
	u := p.User
	groups := make([]int, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := unix.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{}
	for i := range data {
		data[i] = unix.CapUserData{Effective: eff[i], Permitted: perm[i], Inheritable: inh[i]}
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	for c := uint(0); c <= lastCap(); c++ {
		if amb.has(c) {
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
				return fmt.Errorf("raising ambient capability %d: %w", c, err)
			}
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	return nil
}
