package linuxkit

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keelos/keel/internal/spec"
)

// entry is one onboot, onshutdown or services item of the YAML.
type entry struct {
	kind    string // LinuxKit's section: onboot, onshutdown, services
	at      value
	path    string // services[sshd]
	fields  []field
	name    string // LinuxKit's name
	image   string
	imageAt value
	ok      bool // it has a name and an image
}

// entries reads a section's items: their name and image, which every
// later step needs.
func (c *converter) entries(kind string, items []value) []*entry {
	var out []*entry
	seen := map[string]value{}
	for i, it := range items {
		e := &entry{kind: kind, at: it, path: index(kind, i)}
		fs, ok := c.fields(it, e.path)
		if !ok {
			continue
		}
		e.fields = fs
		var hasName, hasImage bool
		for _, f := range fs {
			switch f.key {
			case "name":
				if s, ok := c.str(f.val, join(e.path, "name")); ok && s != "" {
					e.name, hasName = s, true
					e.path = named(kind, s)
				}
			case "image":
				if s, ok := c.str(f.val, join(e.path, "image")); ok && s != "" {
					e.image, e.imageAt, hasImage = s, f.val, true
				}
			}
		}
		if !hasName {
			c.invalid(it, join(e.path, "name"), "required")
		}
		if !hasImage {
			c.invalid(it, join(e.path, "image"), "required")
		}
		e.ok = hasName && hasImage
		if kind == "services" && e.ok {
			// Services run side by side under their names: LinuxKit
			// refuses two of one name, across all its files.
			if prev, dup := seen[e.name]; dup {
				c.invalid(it, e.path, "duplicate service name %q (first at %s:%d)", e.name, prev.file, prev.n.Line)
				e.ok = false
			} else {
				seen[e.name] = it
			}
		}
		out = append(out, e)
	}
	return out
}

// containerIDs are the uid and gid LinuxKit gives each container, which a
// uid, gid or additionalGids elsewhere may name: from 100, onboot first,
// then onshutdown, then services; a name given twice takes the later id.
func containerIDs(lists ...[]*entry) map[string]uint32 {
	ids := map[string]uint32{}
	id := uint32(100)
	for _, l := range lists {
		for _, e := range l {
			if e.name != "" {
				ids[e.name] = id
			}
			id++
		}
	}
	return ids
}

// containers converts a section's entries and gives them keel names:
// keel's naming rule, one name per list (LinuxKit runs onboot and
// onshutdown items of one name one after the other).
func (c *converter) containers(es []*entry) []spec.Container {
	type named struct {
		e  *entry
		ct spec.Container
	}
	var kept []named
	for _, e := range es {
		if !e.ok {
			continue
		}
		if ct, ok := c.container(e); ok {
			kept = append(kept, named{e, ct})
		}
	}
	taken := map[string]bool{}
	for _, k := range kept {
		taken[keelName(k.e.name)] = true
	}
	first := map[string]bool{}
	var out []spec.Container
	for _, k := range kept {
		n := keelName(k.e.name)
		if n == "" {
			c.unsupported(k.e.at, join(k.e.path, "name"), "no keel name can be made of %q (letters, digits and -)", k.e.name)
			continue
		}
		if first[n] {
			base := n
			for i := 2; ; i++ {
				suffix := fmt.Sprintf("-%d", i)
				n = base[:min(len(base), spec.MaxNameLen-len(suffix))] + suffix
				if !taken[n] {
					break
				}
			}
			taken[n] = true
			c.warn(k.e.at, join(k.e.path, "name"), "renamed %s: keel needs one name per list, and %q is taken", n, keelName(k.e.name))
		} else if n != k.e.name {
			c.warn(k.e.at, join(k.e.path, "name"), "renamed %s: keel names are lower-case letters, digits and - (at most %d)", n, spec.MaxNameLen)
		}
		first[n] = true
		k.ct.Name = n
		out = append(out, k.ct)
	}
	return out
}

// origin is where a keel key of a container came from.
type origin struct {
	at   value
	path string
}

// builder makes one container's keel configuration.
type builder struct {
	c     *converter
	e     *entry
	cfg   *spec.Config
	label *spec.Config // the [config] of the keel package the image is, nil if unknown
	from  map[string]origin
	// set says which LinuxKit keys the entry sets, for the rules that
	// combine them (binds and binds.add, uts and hostname).
	set map[string]field
}

// container translates one entry.
func (c *converter) container(e *entry) (spec.Container, bool) {
	p := join(e.path, "image")
	ref, mapped := c.mapImage(e.image)
	switch {
	case mapped && ref == "":
		c.warn(e.imageAt, p, "%s dropped by --image-map: the container is left out", e.image)
		return spec.Container{}, false
	case !mapped && !c.checkRef(ref, e.imageAt, p):
		return spec.Container{}, false
	}
	ct := spec.Container{Image: spec.ImageRef{Ref: ref}}
	b := &builder{c: c, e: e, cfg: &ct.Config, from: map[string]origin{}, set: map[string]field{},
		label: c.label(ref, e.imageAt, p)}
	for _, f := range e.fields {
		if f.key == "name" || f.key == "image" {
			continue
		}
		// A null is LinuxKit's "not set": the image's label decides.
		if f.val.isNull() {
			continue
		}
		b.set[f.key] = f
		b.key(f, join(e.path, f.key))
	}
	b.finish()
	return ct, true
}

// put sets a keel key once keel takes the value alone (set applied to
// an empty configuration); a value keel refuses is reported and left out.
func (b *builder) put(key string, at value, p string, set func(*spec.Config)) bool {
	var trial spec.Config
	set(&trial)
	if msg := checkConfig(b.e.kind, trial); msg != "" {
		b.c.unsupported(at, p, "%s", msg)
		return false
	}
	set(b.cfg)
	if _, ok := b.from[key]; !ok {
		b.from[key] = origin{at, p}
	}
	return true
}

// itemAt is an item of a list, translated, with where it was written.
type itemAt[T any] struct {
	v    T
	at   value
	path string
}

// putList sets a keel list from items, checked by keel as a whole first
// and, when refused, item by item (a large list costs one check).
func putList[T any](b *builder, key string, items []itemAt[T], list func(*spec.Config) *[]T) {
	*list(b.cfg) = []T{} // set, even if empty: it replaces the label's
	var trial spec.Config
	for _, it := range items {
		*list(&trial) = append(*list(&trial), it.v)
	}
	if len(items) > 0 && checkConfig(b.e.kind, trial) == "" {
		*list(b.cfg) = *list(&trial)
		b.from[key] = origin{items[0].at, items[0].path}
		return
	}
	for _, it := range items {
		b.put(key, it.at, it.path, func(cfg *spec.Config) { *list(cfg) = append(*list(cfg), it.v) })
	}
}

// putStrings is putList for a list of strings, item i at index(p, i).
func (b *builder) putStrings(key, p string, items []strAt, list func(*spec.Config) *[]string) {
	its := make([]itemAt[string], len(items))
	for i, it := range items {
		its[i] = itemAt[string]{it.s, it.at, index(p, i)}
	}
	putList(b, key, its, list)
}

// keelBindOptions are the bind options keel's container runtime takes.
var keelBindOptions = []string{"ro", "rw", "rshared", "rslave", "rprivate", "shared", "slave", "private",
	"nosuid", "nodev", "noexec", "suid", "dev", "exec"}

func (b *builder) key(f field, p string) {
	c := b.c
	switch f.key {
	case "capabilities", "ambient":
		caps, ok := b.capabilities(f, p)
		if !ok {
			return
		}
		b.put(f.key, f.val, p, func(cfg *spec.Config) {
			if f.key == "ambient" {
				cfg.Ambient = caps
			} else {
				cfg.Capabilities = caps
			}
		})
	case "capabilities.add", "binds.add":
		// Applied by finish, which needs the whole entry.
	case "binds":
		if binds, ok := b.binds(f, p); ok {
			b.putStrings("binds", p, binds, func(cfg *spec.Config) *[]string { return &cfg.Binds })
		}
	case "mounts":
		b.mounts(f, p)
	case "devices":
		b.devices(f, p)
	case "tmpfs":
		items, ok := c.strs(f.val, p)
		if !ok {
			return
		}
		var valid []strAt
		for i, t := range items {
			if strings.Count(t.s, ":") > 1 {
				c.invalid(t.at, index(p, i), "%q: want /path or /path:OPTION,…", t.s)
				continue
			}
			valid = append(valid, t)
		}
		b.putStrings("tmpfs", p, valid, func(cfg *spec.Config) *[]string { return &cfg.Tmpfs })
	case "command":
		items, ok := c.strs(f.val, p)
		if !ok {
			return
		}
		args := make([]string, len(items))
		for i, it := range items {
			args[i] = it.s
		}
		b.put("command", f.val, p, func(cfg *spec.Config) { cfg.Command = args })
	case "env":
		items, ok := c.strs(f.val, p)
		if !ok {
			return
		}
		b.putStrings("env", p, items, func(cfg *spec.Config) *[]string { return &cfg.Env })
	case "cwd", "hostname":
		s, ok := c.str(f.val, p)
		if !ok || s == "" {
			return // LinuxKit's default
		}
		b.put(f.key, f.val, p, func(cfg *spec.Config) {
			if f.key == "cwd" {
				cfg.Cwd = &s
			} else {
				cfg.Hostname = &s
			}
		})
	case "net", "pid", "ipc", "uts":
		b.namespace(f, p)
	case "userns":
		if s, ok := c.str(f.val, p); ok && s != "" && s != "host" && s != "root" {
			c.unsupported(f.val, p, "keel runs no container in a user namespace")
		}
	case "readonly", "noNewPrivileges":
		v, ok := c.boolean(f.val, p)
		if !ok {
			return
		}
		b.put(map[string]string{"readonly": "readonly", "noNewPrivileges": "no-new-privileges"}[f.key], f.val, p, func(cfg *spec.Config) {
			if f.key == "readonly" {
				cfg.Readonly = &v
			} else {
				cfg.NoNewPrivileges = &v
			}
		})
	case "maskedPaths", "readonlyPaths":
		items, ok := c.strs(f.val, p)
		switch {
		case !ok:
		case len(items) > 0:
			c.unsupported(f.val, p, "keel has no key for it: every container gets runc's default masked and read-only paths (/proc/kcore, /proc/sys, …), and no others")
		default:
			c.warn(f.val, p, "keel still gives the container runc's default masked and read-only paths (LinuxKit gives none)")
		}
	case "uid", "gid":
		id, ok := c.id(f.val, p)
		if !ok {
			return
		}
		b.put(f.key, f.val, p, func(cfg *spec.Config) {
			if f.key == "uid" {
				cfg.UID = &id
			} else {
				cfg.GID = &id
			}
		})
	case "additionalGids":
		items, ok := c.list(f.val, p)
		if !ok {
			return
		}
		gids := []uint32{}
		for i, it := range items {
			id, ok := c.id(it, index(p, i))
			if !ok {
				return
			}
			gids = append(gids, id)
		}
		b.put("additional-gids", f.val, p, func(cfg *spec.Config) { cfg.AdditionalGIDs = gids })
	case "oomScoreAdj":
		v, ok := c.integer(f.val, p)
		if !ok {
			return
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			c.invalid(f.val, p, "%d is out of range", v)
			return
		}
		n := int(v)
		b.put("oom-score-adj", f.val, p, func(cfg *spec.Config) { cfg.OOMScoreAdj = &n })
	case "rootfsPropagation":
		s, ok := c.str(f.val, p)
		if ok && s != "" && s != "slave" && s != "rslave" {
			c.unsupported(f.val, p, "keel keeps every container's mounts rslave (the host's mounts reach it, its own stay inside): to share mounts made under a path with the host, bind it with rshared (binds: SRC:DST:rshared)")
		}
	case "cgroupsPath":
		if s, ok := c.str(f.val, p); ok && s != "" {
			c.unsupported(f.val, p, "keel puts every container in a cgroup of its own, /sys/fs/cgroup/keel/NAME: set its limits with resources")
		}
	case "resources":
		b.resources(f, p)
	case "sysctl":
		fs, ok := c.fields(f.val, p)
		if !ok {
			return
		}
		b.cfg.Sysctl = map[string]string{}
		for _, sf := range fs {
			v, ok := c.str(sf.val, join(p, sf.key))
			if !ok {
				continue
			}
			b.put("sysctl."+sf.key, sf.val, join(p, sf.key), func(cfg *spec.Config) {
				if cfg.Sysctl == nil {
					cfg.Sysctl = map[string]string{}
				}
				cfg.Sysctl[sf.key] = v
			})
		}
	case "rlimits":
		items, ok := c.strs(f.val, p)
		if !ok {
			return
		}
		var limits []itemAt[spec.Rlimit]
		for i, it := range items {
			parts := strings.Split(it.s, ",")
			for j := range parts {
				parts[j] = strings.TrimSpace(parts[j])
			}
			r, err := spec.ParseRlimit(strings.Join(parts, ","))
			if err != nil {
				c.unsupported(it.at, index(p, i), "%v", err)
				continue
			}
			limits = append(limits, itemAt[spec.Rlimit]{r, it.at, index(p, i)})
		}
		putList(b, "rlimits", limits, func(cfg *spec.Config) *[]spec.Rlimit { return &cfg.Rlimits })
	case "uidMappings", "gidMappings":
		if items, ok := c.list(f.val, p); ok && len(items) > 0 {
			c.unsupported(f.val, p, "keel runs no container in a user namespace")
		}
	case "annotations":
		if fs, ok := c.fields(f.val, p); ok && len(fs) > 0 {
			c.unsupported(f.val, p, "keel hands no OCI annotations to a container: its init is the runtime, and no hook reads them")
		}
	case "runtime":
		b.runtime(f, p)
	default:
		c.invalid(f.keyAt, p, "unknown key of an image entry")
	}
}

// capabilities reads a LinuxKit capability list: CAP_ names, or a single
// all or none (in any case).
func (b *builder) capabilities(f field, p string) ([]spec.Capability, bool) {
	items, ok := b.c.strs(f.val, p)
	if !ok {
		return nil, false
	}
	if len(items) == 1 {
		switch strings.ToLower(items[0].s) {
		case "all":
			return []spec.Capability{spec.MustParse[spec.Capability](spec.AllCapabilities)}, true
		case "none":
			return []spec.Capability{}, true
		}
	}
	out := []spec.Capability{}
	for i, it := range items {
		// keel also takes other spellings (net_admin); LinuxKit does not.
		v, err := spec.ParseCapability(it.s)
		if err == nil && !v.IsAll() && v.Name() == it.s {
			out = append(out, v)
			continue
		}
		msg := fmt.Sprintf("unknown capability %q (LinuxKit takes CAP_ names, or a single all or none)", it.s)
		if err == nil && !v.IsAll() {
			msg += fmt.Sprintf("; did you mean %q?", v.Name())
		}
		b.c.invalid(it.at, index(p, i), "%s", msg)
		ok = false
	}
	return out, ok
}

// binds reads binds or binds.add, in keel's form.
func (b *builder) binds(f field, p string) ([]strAt, bool) {
	items, ok := b.c.strs(f.val, p)
	if !ok {
		return nil, false
	}
	var out []strAt
	for i, it := range items {
		if s, ok := b.c.bind(it, index(p, i)); ok {
			out = append(out, strAt{s, it.at})
		}
	}
	return out, true
}

// bind translates SRC:DST[:OPTIONS]. LinuxKit mounts every bind
// recursively, and one without options rw and rshared; a SRC that is
// not a path names a volume.
func (c *converter) bind(it strAt, p string) (string, bool) {
	parts := strings.Split(it.s, ":")
	switch {
	case len(parts) < 2:
		c.invalid(it.at, p, "%q: missing ':' (want SRC:DST[:OPTIONS])", it.s)
		return "", false
	case len(parts) > 3:
		c.invalid(it.at, p, "%q: too many ':' (want SRC:DST[:OPTIONS])", it.s)
		return "", false
	}
	src, dst := parts[0], parts[1]
	if !strings.HasPrefix(src, "/") {
		v, ok := c.volumes[src]
		if !ok {
			c.invalid(it.at, p, "%q: no volume is named %q (a bind's source is a path or a volume)", it.s, src)
			return "", false
		}
		if v.readonly && (len(parts) < 3 || parts[2] != "ro") {
			c.invalid(it.at, p, "%q: volume %q is read-only: bind it with :ro", it.s, src)
			return "", false
		}
		src = v.path
	}
	if len(parts) == 2 {
		return src + ":" + dst + ":rw,rshared", true
	}
	var keep []string
	for _, o := range strings.Split(parts[2], ",") {
		switch {
		case o == "bind" || o == "rbind":
			// keel's binds are recursive, as LinuxKit makes every bind.
		case slices.Contains(keelBindOptions, o):
			keep = append(keep, o)
		default:
			c.unsupported(it.at, p, "bind option %q: keel's binds take %s", o, strings.Join(keelBindOptions, ", "))
		}
	}
	if len(keep) == 0 {
		return src + ":" + dst, true
	}
	return src + ":" + dst + ":" + strings.Join(keep, ","), true
}

// mountPoints are LinuxKit's destinations of a mount given by type only.
var mountPoints = map[string]string{
	"proc": "/proc", "devpts": "/dev/pts", "sysfs": "/sys", "cgroup": "/sys/fs/cgroup", "mqueue": "/dev/mqueue",
}

func (b *builder) mounts(f field, p string) {
	c := b.c
	items, ok := c.mappings(f.val, p)
	if !ok {
		return
	}
	b.cfg.Mounts = []spec.Mount{}
	for _, item := range items {
		it, ip, fs := item.at, item.path, item.fields
		var m spec.Mount
		skip := false
		for _, mf := range fs {
			mp := join(ip, mf.key)
			switch mf.key {
			case "destination", "type", "source":
				s, ok := c.str(mf.val, mp)
				if !ok {
					skip = true
				}
				*map[string]*string{"destination": &m.Destination, "type": &m.Type, "source": &m.Source}[mf.key] = s
			case "options":
				opts, ok := c.strs(mf.val, mp)
				if !ok {
					skip = true
				}
				for _, o := range opts {
					m.Options = append(m.Options, o.s)
				}
			case "uidmappings", "gidmappings":
				if l, ok := c.list(mf.val, mp); ok && len(l) > 0 {
					c.unsupported(mf.val, mp, "keel makes no ID-mapped mounts")
					skip = true
				}
			default:
				c.invalid(mf.keyAt, mp, "unknown key of a mount (LinuxKit's are destination, type, source, options, uidmappings, gidmappings)")
				skip = true
			}
		}
		if skip {
			continue
		}
		// LinuxKit's defaults for what a mount leaves out.
		if m.Type == "" {
			switch m.Source {
			case "mqueue", "devpts", "proc", "sysfs", "cgroup":
				m.Type = m.Source
			}
		}
		if m.Type == "" && m.Destination == "/dev" {
			m.Type = "tmpfs"
		}
		if m.Type == "" {
			c.invalid(it, ip, "the mount for %q is missing its type", m.Destination)
			continue
		}
		if m.Source == "" {
			m.Source = m.Type
		}
		if m.Destination == "" {
			m.Destination = mountPoints[m.Type]
		}
		if m.Destination == "" {
			c.invalid(it, ip, "the %s mount is missing its destination", m.Type)
			continue
		}
		if m.Type == "cgroup" {
			// runc mounts the unified hierarchy for it on a cgroup v2
			// host, which keel's machines are.
			m.Type = "cgroup2"
		}
		if m.Type == "bind" && !strings.HasPrefix(m.Source, "/") {
			v, ok := c.volumes[m.Source]
			if !ok {
				c.invalid(it, ip, "no volume is named %q (a bind mount's source is a path or a volume)", m.Source)
				continue
			}
			if v.readonly && !readOnlyOptions(m.Options) {
				c.invalid(it, ip, "volume %q is read-only: mount it with option ro", m.Source)
				continue
			}
			m.Source = v.path
		}
		b.put("mounts", it, ip, func(cfg *spec.Config) { cfg.Mounts = append(cfg.Mounts, m) })
	}
}

// readOnlyOptions says whether mount options make it read-only: the first
// of ro and rw decides, as LinuxKit reads them.
func readOnlyOptions(opts []string) bool {
	for _, o := range opts {
		switch o {
		case "ro":
			return true
		case "rw":
			return false
		}
	}
	return false
}

func (b *builder) devices(f field, p string) {
	c := b.c
	items, ok := c.mappings(f.val, p)
	if !ok {
		return
	}
	b.cfg.Devices = []spec.Device{}
	for _, item := range items {
		it, ip, fs := item.at, item.path, item.fields
		var d spec.Device
		skip := false
		for _, df := range fs {
			dp := join(ip, df.key)
			switch df.key {
			case "path", "type":
				s, ok := c.str(df.val, dp)
				skip = skip || !ok
				if df.key == "path" {
					d.Path = s
				} else {
					d.Type = s
				}
			case "major", "minor":
				n, ok := c.integer(df.val, dp)
				skip = skip || !ok
				if df.key == "major" {
					d.Major = &n
				} else {
					d.Minor = &n
				}
			case "mode":
				m, ok := c.mode(df.val, dp)
				skip = skip || !ok
				d.Mode = m
			default:
				c.invalid(df.keyAt, dp, "unknown key of a device (LinuxKit's are path, type, major, minor, mode)")
				skip = true
			}
		}
		if skip {
			continue
		}
		if d.Path == "all" {
			c.unsupported(it, ip, "keel allows devices by node, not a whole class: list the nodes (a glob such as /dev/sd* allows every node it matches)")
			continue
		}
		b.put("devices", it, ip, func(cfg *spec.Config) { cfg.Devices = append(cfg.Devices, d) })
	}
}

// namespace translates net, pid, ipc or uts: host (or root), new (or
// none, for net), or a path to join; "" is LinuxKit's default.
func (b *builder) namespace(f field, p string) {
	s, ok := b.c.str(f.val, p)
	if !ok || s == "" {
		delete(b.set, f.key)
		return
	}
	var v string
	switch {
	case s == "host" || s == "root":
		v = "host"
	case s == "new" || f.key == "net" && s == "none":
		v = "new"
	case strings.HasPrefix(s, "/"):
		v = s
	default:
		none := ""
		if f.key == "net" {
			none = ", none"
		}
		b.c.invalid(f.val, p, "%q: want host, new%s or the path of a namespace", s, none)
		delete(b.set, f.key)
		return
	}
	b.put(f.key, f.val, p, func(cfg *spec.Config) { *nsField(cfg, f.key) = &v })
}

// nsField is the config field of a namespace key.
func nsField(cfg *spec.Config, key string) **string {
	switch key {
	case "net":
		return &cfg.Net
	case "pid":
		return &cfg.Pid
	case "ipc":
		return &cfg.Ipc
	case "uts":
		return &cfg.Uts
	}
	return &cfg.Cgroup
}

func (b *builder) resources(f field, p string) {
	c := b.c
	fs, ok := c.fields(f.val, p)
	if !ok {
		return
	}
	res := func(cfg *spec.Config) *spec.Resources {
		if cfg.Resources == nil {
			cfg.Resources = &spec.Resources{}
		}
		return cfg.Resources
	}
	for _, rf := range fs {
		rp := join(p, rf.key)
		switch rf.key {
		case "memory", "cpu", "pids":
			sub, ok := c.fields(rf.val, rp)
			if !ok {
				continue
			}
			var quota, period int64
			var quotaAt, periodAt value
			for _, x := range sub {
				xp := join(rp, x.key)
				switch rf.key + "." + x.key {
				case "memory.limit":
					if n, ok := c.integer(x.val, xp); ok && n > 0 {
						limit := spec.MustParse[spec.Size](strconv.FormatInt(n, 10)) // bytes
						b.put("resources.memory", x.val, xp, func(cfg *spec.Config) { res(cfg).Memory = limit })
					}
				case "pids.limit":
					if n, ok := c.integer(x.val, xp); ok && n > 0 {
						b.put("resources.pids", x.val, xp, func(cfg *spec.Config) { res(cfg).Pids = &n })
					}
				case "cpu.quota":
					quota, _ = c.integer(x.val, xp)
					quotaAt = x.val
				case "cpu.period":
					period, _ = c.integer(x.val, xp)
					periodAt = x.val
				case "cpu.cpus", "cpu.mems":
					if s, ok := c.str(x.val, xp); ok && s != "" {
						c.unsupported(x.val, xp, "keel sets no cpuset: only a CPU time limit (resources.cpu)")
					}
				case "memory.disableOOMKiller":
					if v, ok := c.boolean(x.val, xp); ok && v {
						c.unsupported(x.val, xp, "keel sets only the memory limit (resources.memory)")
					}
				case "memory.reservation", "memory.swap", "memory.kernel", "memory.kernelTCP", "memory.swappiness":
					if n, ok := c.integer(x.val, xp); ok && n != 0 {
						c.unsupported(x.val, xp, "keel sets only the memory limit (resources.memory)")
					}
				case "cpu.shares", "cpu.realtimeRuntime", "cpu.realtimePeriod":
					if n, ok := c.integer(x.val, xp); ok && n != 0 {
						c.unsupported(x.val, xp, "keel sets only a CPU time limit (resources.cpu: quota over period), not a weight or real-time budget")
					}
				default:
					c.invalid(x.keyAt, xp, "unknown key of resources.%s", rf.key)
				}
			}
			switch {
			case quota > 0:
				if period <= 0 {
					period = 100000 // the kernel's default CFS period
				}
				text, exact := decimal(quota, period)
				if !exact {
					c.warn(quotaAt, join(rp, "quota"), "%d/%d CPUs rounded to %s", quota, period, text)
				}
				if cpus, err := spec.ParseCPU(text); err != nil {
					c.unsupported(quotaAt, join(rp, "quota"), "%v", err)
				} else {
					b.put("resources.cpu", quotaAt, join(rp, "quota"), func(cfg *spec.Config) { res(cfg).CPU = cpus })
				}
			case period > 0:
				c.warn(periodAt, join(rp, "period"), "a period without a quota sets no limit")
			}
		case "devices", "blockio", "hugepageLimits", "network":
			switch n := rf.val.node(); {
			case rf.val.isNull():
			case n.Kind == yaml.ScalarNode:
				c.invalid(rf.val, rp, "want a mapping or a list, not %s", describe(n))
			case len(n.Content) > 0:
				c.unsupported(rf.val, rp, "keel sets only resources.memory, resources.cpu and resources.pids")
			}
		default:
			c.invalid(rf.keyAt, rp, "unknown key of resources (LinuxKit's are devices, memory, cpu, pids, blockio, hugepageLimits, network)")
		}
	}
}

// decimal writes q/p as a decimal with at most 6 places, and whether that
// is exact.
func decimal(q, p int64) (string, bool) {
	r := big.NewRat(q, p)
	s := strings.TrimRight(strings.TrimRight(r.FloatString(6), "0"), ".")
	back, _ := new(big.Rat).SetString(s)
	return s, back.Cmp(r) == 0
}

func (b *builder) runtime(f field, p string) {
	c := b.c
	fs, ok := c.fields(f.val, p)
	if !ok {
		return
	}
	rt := func(cfg *spec.Config) *spec.Runtime {
		if cfg.Runtime == nil {
			cfg.Runtime = &spec.Runtime{}
		}
		return cfg.Runtime
	}
	for _, rf := range fs {
		rp := join(p, rf.key)
		if rf.val.isNull() {
			continue
		}
		switch rf.key {
		case "cgroups":
			if l, ok := c.strs(rf.val, rp); ok && len(l) > 0 {
				c.unsupported(rf.val, rp, "keel makes the container's own cgroup (/sys/fs/cgroup/keel/NAME) and no others")
			}
		case "mounts":
			if l, ok := c.list(rf.val, rp); ok && len(l) > 0 {
				c.unsupported(rf.val, rp, "keel mounts nothing in the host's mount namespace before a container starts: bind what the container needs, or mount it from an onboot container with a bind marked rshared")
			}
		case "mkdir":
			dirs, ok := c.strs(rf.val, rp)
			if !ok {
				continue
			}
			for i, d := range dirs {
				b.put("runtime.mkdir", d.at, index(rp, i), func(cfg *spec.Config) { rt(cfg).Mkdir = append(rt(cfg).Mkdir, d.s) })
			}
		case "interfaces":
			b.interfaces(rf, rp, rt)
		case "bindNS":
			ns, ok := c.fields(rf.val, rp)
			if !ok {
				continue
			}
			for _, nf := range ns {
				np := join(rp, nf.key)
				s, ok := c.str(nf.val, np)
				if !ok || s == "" {
					continue
				}
				set := map[string]func(*spec.BindNS){
					"net": func(x *spec.BindNS) { x.Net = s }, "pid": func(x *spec.BindNS) { x.Pid = s },
					"ipc": func(x *spec.BindNS) { x.Ipc = s }, "uts": func(x *spec.BindNS) { x.Uts = s },
					"mnt": func(x *spec.BindNS) { x.Mnt = s }, "cgroup": func(x *spec.BindNS) { x.Cgroup = s },
				}[nf.key]
				switch {
				case set != nil:
					b.put("runtime.bind-ns."+nf.key, nf.val, np, func(cfg *spec.Config) {
						if rt(cfg).BindNS == nil {
							rt(cfg).BindNS = &spec.BindNS{}
						}
						set(rt(cfg).BindNS)
					})
				case nf.key == "user":
					c.unsupported(nf.val, np, "keel runs no container in a user namespace")
				default:
					c.invalid(nf.keyAt, np, "unknown namespace (LinuxKit's are cgroup, ipc, mnt, net, pid, user, uts)")
				}
			}
		case "namespace":
			s, ok := c.str(rf.val, rp)
			switch {
			case !ok || s == "":
			case b.e.kind == "services":
				c.warn(rf.val, rp, "ignored: keel runs its containers without containerd, so there is no containerd namespace to put it in")
			default:
				c.warn(rf.val, rp, "ignored, as LinuxKit ignores it outside services")
			}
		default:
			c.invalid(rf.keyAt, rp, "unknown key of runtime (LinuxKit's are cgroups, mounts, mkdir, interfaces, bindNS, namespace)")
		}
	}
}

func (b *builder) interfaces(f field, p string, rt func(*spec.Config) *spec.Runtime) {
	c := b.c
	items, ok := c.mappings(f.val, p)
	if !ok {
		return
	}
	for _, item := range items {
		it, ip, fs := item.at, item.path, item.fields
		var in spec.Interface
		skip := false
		for _, x := range fs {
			xp := join(ip, x.key)
			switch x.key {
			case "name", "add", "peer":
				s, ok := c.str(x.val, xp)
				skip = skip || !ok
				*map[string]*string{"name": &in.Name, "add": &in.Add, "peer": &in.Peer}[x.key] = s
			case "createInRoot":
				// Where a veth is made does not show once it is in place:
				// keel makes its named end in the container's namespace.
				_, ok := c.boolean(x.val, xp)
				skip = skip || !ok
			default:
				c.invalid(x.keyAt, xp, "unknown key of an interface (LinuxKit's are name, add, peer, createInRoot)")
				skip = true
			}
		}
		if skip {
			continue
		}
		if in.Peer != "" && in.Add == "" {
			in.Add = "veth" // a peer implies a veth, in LinuxKit
		}
		switch {
		case in.Add != "" && in.Add != "veth":
			c.unsupported(it, ip, "keel makes veth pairs only (and moves existing interfaces in), not %s", in.Add)
			continue
		case in.Add == "veth" && in.Peer == "":
			c.unsupported(it, ip, "keel's veth needs a peer: the name of its end on the host")
			continue
		}
		b.put("runtime.interfaces", it, ip, func(cfg *spec.Config) { rt(cfg).Interfaces = append(rt(cfg).Interfaces, in) })
	}
}

// finish applies what depends on several keys and on the image's label,
// then keel's check of the whole entry.
func (b *builder) finish() {
	c, e, cfg := b.c, b.e, b.cfg
	b.addToLabel("capabilities")
	b.addToLabel("binds")

	// LinuxKit runs a container in the host's network, IPC and UTS
	// namespaces, and never in a cgroup namespace of its own, unless the
	// entry or its image's label says otherwise; keel makes new ones.
	for _, key := range []string{"net", "ipc", "uts", "cgroup"} {
		if _, ok := b.set[key]; ok {
			continue
		}
		if b.label != nil && *nsField(b.label, key) != nil {
			continue
		}
		host := "host"
		*nsField(cfg, key) = &host
		b.from[key] = origin{e.at, join(e.path, key)}
	}
	if f, ok := b.set["hostname"]; ok && cfg.Hostname != nil && effective(cfg.Uts, b.label, "uts") == "host" {
		c.unsupported(f.val, join(e.path, "hostname"), "a host name needs uts: new (without it the container shares the host's UTS namespace, where LinuxKit's runc refuses a host name too)")
		cfg.Hostname = nil
	}
	b.check()
}

// check applies keel's check of the whole entry: each key it refuses is
// reported where it was written and left out.
func (b *builder) check() {
	c, e, cfg := b.c, b.e, b.cfg
	// Rules over several keys (a net.* sysctl in the host's network
	// namespace): keel's check of the whole entry, each refused key
	// reported where it was written and left out.
	for range 8 {
		es := specErrors(containerSpec(e.kind, spec.Container{Name: "x", Image: spec.ImageRef{Ref: "x"}, Config: *cfg}))
		if len(es) == 0 {
			return
		}
		removed := false
		for _, se := range es {
			key := configKey(se.Path)
			if i := strings.IndexByte(key, '['); i >= 0 {
				key = key[:i]
			}
			o, found := origin{e.at, e.path}, ""
			for k := key; k != ""; {
				if x, ok := b.from[k]; ok {
					o, found = x, k
					break
				}
				i := strings.LastIndexByte(k, '.')
				if i < 0 {
					break
				}
				k = k[:i]
			}
			c.unsupported(o.at, o.path, "%s", message(se))
			if found == "" {
				found = key
			}
			if removeKey(cfg, found) {
				removed = true
			}
		}
		if !removed {
			return
		}
	}
}

// effective is a namespace key's value for the container: the entry's,
// else the label's, else LinuxKit's default (the host's).
func effective(v *string, label *spec.Config, key string) string {
	if v != nil {
		return *v
	}
	if label != nil && *nsField(label, key) != nil {
		return **nsField(label, key)
	}
	return "host"
}

// addToLabel applies capabilities.add or binds.add: LinuxKit adds them to
// the image label's list, unless the entry sets the list itself. keel
// has no such key: the converter writes the sum, which needs the label,
// known only for a keel package.
func (b *builder) addToLabel(key string) {
	add, ok := b.set[key+".add"]
	if !ok {
		return
	}
	c, p := b.c, join(b.e.path, key+".add")
	if _, ok := b.set[key]; ok {
		c.warn(add.keyAt, p, "ignored, as LinuxKit ignores it: %s is set", key)
		return
	}
	if b.label == nil {
		c.unsupported(add.keyAt, p, "keel has no %[1]s.add, and the %[1]s of %[2]s's label are not known when converting: list them all under %[1]s, or map the image to a keel package (--image-map)", key, b.e.image)
		return
	}
	if key == "capabilities" {
		caps, ok := b.capabilities(add, p)
		if !ok {
			return
		}
		sum := union(b.label.Capabilities, caps, func(x, y spec.Capability) bool { return x.Name() == y.Name() })
		if slices.ContainsFunc(sum, spec.Capability.IsAll) {
			sum = []spec.Capability{spec.MustParse[spec.Capability](spec.AllCapabilities)}
		}
		b.put(key, add.val, p, func(cfg *spec.Config) { cfg.Capabilities = sum })
		return
	}
	binds, ok := b.binds(add, p)
	if !ok {
		return
	}
	added := make([]string, len(binds))
	for i, bd := range binds {
		added[i] = bd.s
	}
	sum := union(b.label.Binds, added, func(x, y string) bool { return x == y })
	b.put(key, add.val, p, func(cfg *spec.Config) { cfg.Binds = sum })
}

// union is list followed by the items of added it does not hold; never nil.
func union[T any](list, added []T, same func(x, y T) bool) []T {
	sum := append([]T{}, list...)
	for _, a := range added {
		if !slices.ContainsFunc(sum, func(x T) bool { return same(x, a) }) {
			sum = append(sum, a)
		}
	}
	return sum
}
