package spec

// Override returns c with every key that over sets (non-nil) replaced by
// over's value: a spec entry overriding its package's [config]. Lists
// replace, they do not append, so a spec can drop a package's default
// capabilities with `capabilities = []`. The result shares slices and maps
// with its inputs.
func (c Config) Override(over Config) Config {
	setSlice(&c.Command, over.Command)
	setSlice(&c.Env, over.Env)
	setPtr(&c.Cwd, over.Cwd)
	setSlice(&c.Capabilities, over.Capabilities)
	setSlice(&c.Ambient, over.Ambient)
	setSlice(&c.Binds, over.Binds)
	setSlice(&c.Mounts, over.Mounts)
	setSlice(&c.Tmpfs, over.Tmpfs)
	setSlice(&c.Devices, over.Devices)
	setPtr(&c.Net, over.Net)
	setPtr(&c.Pid, over.Pid)
	setPtr(&c.Ipc, over.Ipc)
	setPtr(&c.Uts, over.Uts)
	setPtr(&c.Cgroup, over.Cgroup)
	setPtr(&c.Readonly, over.Readonly)
	setPtr(&c.UID, over.UID)
	setPtr(&c.GID, over.GID)
	setSlice(&c.AdditionalGIDs, over.AdditionalGIDs)
	setPtr(&c.NoNewPrivileges, over.NoNewPrivileges)
	setPtr(&c.Seccomp, over.Seccomp)
	setPtr(&c.Hostname, over.Hostname)
	setPtr(&c.OOMScoreAdj, over.OOMScoreAdj)
	if over.Sysctl != nil {
		c.Sysctl = over.Sysctl
	}
	setSlice(&c.Rlimits, over.Rlimits)
	setPtr(&c.Resources, over.Resources)
	setPtr(&c.Restart, over.Restart)
	setPtr(&c.Runtime, over.Runtime)
	return c
}

func setSlice[T any](dst *[]T, over []T) {
	if over != nil {
		*dst = over
	}
}

func setPtr[T any](dst **T, over *T) {
	if over != nil {
		*dst = over
	}
}
