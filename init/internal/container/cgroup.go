package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// wantedControllers are delegated down to every container group.
var wantedControllers = []string{"cpu", "memory", "pids"}

// EnableControllers turns on the wanted controllers that dir offers in its
// cgroup.subtree_control, so its children can be limited. It returns the
// controllers that could not be enabled.
func EnableControllers(dir string) (missing []string, err error) {
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	have := strings.Fields(string(avail))
	for _, c := range wantedControllers {
		if !contains(have, c) {
			missing = append(missing, c)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
			missing = append(missing, c)
		}
	}
	return missing, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// makeCgroup creates the group at mount+rel, delegating controllers from
// the mount down, and applies the limits. Limits whose controller is not
// available become warnings, not errors: a container runs unlimited
// rather than not at all.
func makeCgroup(mount, rel string, r *specs.LinuxResources) (dir string, warnings []string, err error) {
	dir = filepath.Join(mount, filepath.Clean("/"+rel))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("cgroup: %w", err)
	}
	// Delegate along the path: mount, mount/keel, … down to dir's parent.
	parts := strings.Split(strings.Trim(filepath.Clean("/"+rel), "/"), "/")
	cur := mount
	for _, p := range parts {
		if _, err := EnableControllers(cur); err != nil {
			return "", nil, err
		}
		cur = filepath.Join(cur, p)
	}
	if r == nil {
		return dir, nil, nil
	}
	write := func(file, value, what string) error {
		// cgroupfs answers EACCES, not ENOENT, for a file it does not have.
		if _, err := os.Stat(filepath.Join(dir, file)); errors.Is(err, os.ErrNotExist) {
			warnings = append(warnings, fmt.Sprintf("%s limit not applied: no %s in cgroup %s (controller not available)", what, file, dir))
			return nil
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
			return fmt.Errorf("cgroup %s: %w", file, err)
		}
		return nil
	}
	if r.Memory != nil && r.Memory.Limit != nil {
		if err := write("memory.max", strconv.FormatInt(*r.Memory.Limit, 10), "memory"); err != nil {
			return "", warnings, err
		}
	}
	if r.CPU != nil && r.CPU.Quota != nil {
		period := uint64(100000)
		if r.CPU.Period != nil {
			period = *r.CPU.Period
		}
		if err := write("cpu.max", fmt.Sprintf("%d %d", *r.CPU.Quota, period), "cpu"); err != nil {
			return "", warnings, err
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		if err := write("pids.max", strconv.FormatInt(*r.Pids.Limit, 10), "pids"); err != nil {
			return "", warnings, err
		}
	}
	return dir, warnings, nil
}

// KillCgroup kills every process left in the group (cgroup.kill, Linux
// 5.14+), so a container that shares the host's PID namespace leaves no
// strays behind.
func KillCgroup(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("killing cgroup %s: %w", dir, err)
	}
	return nil
}

// RemoveCgroup removes an empty group; a busy one is left for later.
func RemoveCgroup(dir string) error {
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing cgroup %s: %w", dir, err)
	}
	return nil
}
