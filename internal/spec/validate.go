package spec

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/hostname"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	moduleRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	sysctlRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[A-Za-z0-9_@:+-]+)+$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// MountFlags are the options a bind or tmpfs may carry besides key=value
// ones; runtimeconfig turns each into the container's mount options.
var MountFlags = []string{
	"ro", "rw", "bind", "rbind", "shared", "rshared", "slave", "rslave", "private", "rprivate",
	"nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "relatime", "strictatime",
}

// namespaceValues are the keywords of net, pid, ipc and uts (or a path).
var namespaceValues = []string{"new", "host"}

// Limits on strings that become names of files, directories and cgroups.
const (
	// MaxNameLen is a DNS label's: an image, container or volume name
	// becomes output file names (NAME-ARCH-…), directory and cgroup names.
	MaxNameLen = 63
	// MaxPathLen and MaxPathComponentLen are Linux's PATH_MAX and
	// NAME_MAX, for paths in the image.
	MaxPathLen          = 4095
	MaxPathComponentLen = 255
)

// SeccompProfiles are the keywords of seccomp; any other value is the
// path of a profile file.
var SeccompProfiles = []string{"default", "unconfined"}

// CheckName reports whether name is a valid image, container or volume
// name: at most MaxNameLen lower-case letters, digits and '-', starting
// with a letter or digit.
func CheckName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%s is too long for a name (%d characters; at most %d)", abbrev(name), len(name), MaxNameLen)
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q is not a valid name (lower-case letters, digits and '-', starting with a letter or digit)", name)
	}
	return nil
}

// abbrev quotes s, cut after its first 32 bytes when longer.
func abbrev(s string) string {
	if len(s) <= 32 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…", s[:32])
}

// checkName reports a missing or malformed name.
func (l *located) checkName(p keyPath, name string) {
	switch {
	case !l.has(p):
		l.errorf(p, "required")
	default:
		if err := CheckName(name); err != nil {
			l.errorf(p, "%v", err)
		}
	}
}

func (l *located) checkOneOf(p keyPath, v string, allowed []string, what string) {
	if !slices.Contains(allowed, v) {
		l.hintf(p, suggest(v, allowed), "unknown %s %q (one of %s)", what, v, strings.Join(allowed, ", "))
	}
}

// checkAbs reports a path in the image that is not absolute and clean.
func (l *located) checkAbs(p keyPath, v string) {
	longest := 0
	for c := range strings.SplitSeq(v, "/") {
		longest = max(longest, len(c))
	}
	switch {
	case len(v) > MaxPathLen:
		l.errorf(p, "path %s is too long (%d bytes; at most %d)", abbrev(v), len(v), MaxPathLen)
	case longest > MaxPathComponentLen:
		l.errorf(p, "path %s has a name too long (%d bytes; at most %d)", abbrev(v), longest, MaxPathComponentLen)
	case strings.IndexByte(v, 0) >= 0:
		l.errorf(p, "%q holds a NUL byte, which no file name can", v)
	case !strings.HasPrefix(v, "/"):
		l.errorf(p, "%q is not an absolute path", v)
	case path.Clean(v) != v || slices.Contains(strings.Split(v, "/"), ".."):
		l.errorf(p, "%q is not a clean path (want %q, without ..)", v, path.Clean(v))
	}
}

// checkSpec validates one file of a spec. Requirements that a later file
// may fulfil (kernel.image) are checked after merging.
func (l *located) checkSpec(s *Spec) {
	root := keyPath{}
	if l.has(root.field("name")) {
		l.checkName(root.field("name"), s.Name)
	}
	for i, a := range s.Arch {
		l.checkOneOf(root.field("arch").elem(i), a, Archs, "architecture")
	}
	for i, r := range s.Init {
		if r.Ref == "" {
			l.errorf(root.field("init").elem(i), "empty image reference")
		}
	}
	kp := root.field("kernel")
	if l.has(kp.field("image")) && s.Kernel.Image.Ref == "" {
		l.errorf(kp.field("image"), "empty image reference")
	}
	for i, m := range s.Kernel.Modules {
		if !moduleRE.MatchString(m) {
			l.errorf(kp.field("modules").elem(i), "%q is not a module name (like virtio_net)", m)
		}
	}
	l.checkContainers(root.field("onboot"), s.Onboot, false)
	l.checkContainers(root.field("service"), s.Services, true)
	l.checkContainers(root.field("onshutdown"), s.Onshutdown, false)
	l.checkFiles(root.field("file"), s.Files)
	vp := root.field("volume")
	seen := map[string]keyPath{}
	for i, v := range s.Volumes {
		p := vp.entry(i, v.Name)
		l.checkName(p.field("name"), v.Name)
		if len(v.Name) > MaxVolumeNameLen && len(v.Name) <= MaxNameLen {
			l.errorf(p.field("name"), "volume name %q is too long (%d characters; at most %d, a GPT partition name)", v.Name, len(v.Name), MaxVolumeNameLen)
		}
		if !l.has(p.field("size")) {
			l.errorf(p.field("size"), "required: the volume's size (its partition's on a disk), e.g. size = \"1GiB\"")
		}
		if prev, dup := seen[v.Name]; dup && v.Name != "" {
			l.errorf(p.field("name"), "duplicate volume name %q (first at line %d)", v.Name, l.lookup(prev).line)
		} else {
			seen[v.Name] = p.field("name")
		}
	}
	op := root.field("output")
	for i, f := range s.Output.Formats {
		// LinuxKit's names are taken as keel build --format takes them:
		// the keel format replaces an accepted one.
		if k, err := ResolveFormat(f); err == nil {
			s.Output.Formats[i] = k
		} else if _, alias := format.LookupAlias(f); alias {
			l.errorf(op.field("formats").elem(i), "%v", err)
		} else {
			l.checkOneOf(op.field("formats").elem(i), f, format.Names(), "output format")
		}
	}
	if l.has(op.field("root")) {
		l.checkOneOf(op.field("root"), s.Output.Root, RootFormats, "root filesystem")
	}
	if l.has(op.field("verity-corruption")) {
		l.checkOneOf(op.field("verity-corruption"), s.Output.VerityCorruption, VerityCorruptionPolicies, "verity corruption policy")
	}
	if l.has(op.field("initrd-max-percent")) && (s.Output.InitrdMaxPercent < 1 || s.Output.InitrdMaxPercent > 100) {
		l.errorf(op.field("initrd-max-percent"), "%d is not a percentage from 1 to 100", s.Output.InitrdMaxPercent)
	}
}

func (l *located) checkContainers(lp keyPath, cs []Container, service bool) {
	seen := map[string]keyPath{}
	for i, c := range cs {
		p := lp.entry(i, c.Name)
		l.checkName(p.field("name"), c.Name)
		if prev, dup := seen[c.Name]; dup && c.Name != "" {
			l.errorf(p.field("name"), "duplicate name %q (first at line %d)", c.Name, l.lookup(prev).line)
		} else {
			seen[c.Name] = p.field("name")
		}
		if !l.has(p.field("image")) {
			l.errorf(p.field("image"), "required")
		} else if c.Image.Ref == "" {
			l.errorf(p.field("image"), "empty image reference")
		}
		if c.Restart != nil && !service {
			l.errorf(p.field("restart"), "restart applies only to [[service]] entries")
		}
		allowed := append(ImagePrivilegeKeys(), AllPrivileges)
		for i, k := range c.AllowImagePrivileges {
			if !slices.Contains(allowed, k) {
				l.hintf(p.field("allow-image-privileges").elem(i), suggest(k, allowed),
					"%q is not a privilege key (one of %s)", k, strings.Join(allowed, ", "))
			}
		}
		l.checkConfig(p, &c.Config)
	}
}

// checkConfig validates a container's runtime configuration, in a spec
// entry or a package's [config].
func (l *located) checkConfig(p keyPath, c *Config) {
	l.checkCommand(p.field("command"), c.Command, true)
	for i, e := range c.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || !envKeyRE.MatchString(k) {
			l.errorf(p.field("env").elem(i), "%q is not KEY=value", e)
		}
	}
	if c.Cwd != nil {
		l.checkAbs(p.field("cwd"), *c.Cwd)
	}
	for i, b := range c.Binds {
		l.checkBind(p.field("binds").elem(i), b)
	}
	for i, m := range c.Mounts {
		mp := p.field("mounts").entry(i, m.Destination)
		if m.Type == "" {
			l.errorf(mp.field("type"), "required")
		}
		if !l.has(mp.field("destination")) {
			l.errorf(mp.field("destination"), "required")
		} else {
			l.checkAbs(mp.field("destination"), m.Destination)
		}
		for j, o := range m.Options {
			if o == "" {
				l.errorf(mp.field("options").elem(j), "empty mount option")
			}
		}
	}
	for i, t := range c.Tmpfs {
		l.checkTmpfs(p.field("tmpfs").elem(i), t)
	}
	for i, d := range c.Devices {
		l.checkDevice(p.field("devices").entry(i, d.Path), d)
	}
	for _, ns := range []struct {
		key string
		v   *string
	}{{"net", c.Net}, {"pid", c.Pid}, {"ipc", c.Ipc}, {"uts", c.Uts}, {"cgroup", c.Cgroup}} {
		if ns.v == nil || slices.Contains(namespaceValues, *ns.v) {
			continue
		}
		if strings.HasPrefix(*ns.v, "/") {
			l.checkAbs(p.field(ns.key), *ns.v)
			continue
		}
		l.hintf(p.field(ns.key), suggest(*ns.v, namespaceValues), "%q is not new, host or an absolute path", *ns.v)
	}
	if c.Seccomp != nil {
		l.checkSeccomp(p.field("seccomp"), *c.Seccomp)
	}
	if c.Hostname != nil {
		if err := hostname.Check(*c.Hostname); err != nil {
			l.errorf(p.field("hostname"), "%v", err)
		}
	}
	if c.OOMScoreAdj != nil && (*c.OOMScoreAdj < -1000 || *c.OOMScoreAdj > 1000) {
		l.errorf(p.field("oom-score-adj"), "%d is outside -1000..1000", *c.OOMScoreAdj)
	}
	for _, k := range sortedKeys(c.Sysctl) {
		kp := keyPath{key: p.field("sysctl").key + "." + k, disp: p.field("sysctl").disp + "." + k}
		if !sysctlRE.MatchString(k) {
			l.errorf(kp, "%q is not a sysctl name (dotted, like net.ipv4.ip_forward)", k)
		} else if c.Sysctl[k] == "" {
			l.errorf(kp, "empty value")
		} else if msg := c.sysctlProblem(k); msg != "" {
			l.errorf(kp, "%s", msg)
		}
	}
	if r := c.Resources; r != nil && r.Pids != nil && *r.Pids <= 0 {
		l.errorf(p.field("resources").field("pids"), "must be above zero")
	}
	if c.Restart != nil {
		l.checkOneOf(p.field("restart"), *c.Restart, RestartPolicies, "restart policy")
	}
	if r := c.Runtime; r != nil {
		rp := p.field("runtime")
		for i, d := range r.Mkdir {
			l.checkAbs(rp.field("mkdir").elem(i), d)
		}
		for i, it := range r.Interfaces {
			ip := rp.field("interfaces").entry(i, it.Name)
			if !ifnameRE.MatchString(it.Name) {
				l.errorf(ip.field("name"), "%q is not an interface name (1-15 letters, digits, '_', '.', '-')", it.Name)
			}
			if it.Add != "" && it.Add != "veth" {
				l.hintf(ip.field("add"), suggest(it.Add, []string{"veth"}), "unknown interface type %q (only veth)", it.Add)
			}
			if it.Peer != "" {
				if it.Add != "veth" {
					l.errorf(ip.field("peer"), "peer needs add = \"veth\"")
				} else if !ifnameRE.MatchString(it.Peer) {
					l.errorf(ip.field("peer"), "%q is not an interface name", it.Peer)
				}
			}
			if it.CreateInNS && it.Add != "veth" {
				l.errorf(ip.field("create-in-ns"), "create-in-ns needs add = \"veth\" (an existing interface is moved, not created)")
			}
		}
		if b := r.BindNS; b != nil {
			bp := rp.field("bind-ns")
			for _, ns := range []struct{ key, v string }{
				{"net", b.Net}, {"pid", b.Pid}, {"ipc", b.Ipc}, {"uts", b.Uts}, {"mnt", b.Mnt}, {"cgroup", b.Cgroup},
			} {
				if l.has(bp.field(ns.key)) {
					l.checkAbs(bp.field(ns.key), ns.v)
				}
			}
		}
	}
}

// checkSeccomp validates a seccomp value: a keyword, or a relative path
// inside the spec's directory to a .json profile in Docker's format.
func (l *located) checkSeccomp(p keyPath, v string) {
	if slices.Contains(SeccompProfiles, v) {
		return
	}
	if !strings.HasSuffix(v, ".json") {
		l.hintf(p, suggest(v, SeccompProfiles), "%q is not default, unconfined or the path of a .json profile", v)
		return
	}
	if strings.HasPrefix(v, "/") || !filepath.IsLocal(v) {
		l.errorf(p, "%q: a profile's path is relative to the spec file and stays inside its directory", v)
	}
}

// checkCommand validates arguments, which exec takes as C strings;
// withProgram says the first one is the program.
func (l *located) checkCommand(p keyPath, args []string, withProgram bool) {
	for i, a := range args {
		switch {
		case strings.ContainsRune(a, 0):
			l.errorf(p.elem(i), "%q contains a NUL byte", a)
		case i == 0 && withProgram && a == "":
			l.errorf(p.elem(i), "empty program name")
		}
	}
}

// checkBind validates "SRC:DST[:OPT,OPT]".
func (l *located) checkBind(p keyPath, b string) {
	parts := strings.Split(b, ":")
	if len(parts) < 2 || len(parts) > 3 {
		l.errorf(p, "%q is not SRC:DST[:OPTIONS]", b)
		return
	}
	if _, ok := BindVolume(b); ok {
		if err := CheckName(parts[0]); err != nil {
			l.errorf(p, "bind %q: the source is neither an absolute clean path nor a volume name: %v", b, err)
			return
		}
		parts[0] = "/"
	}
	for _, x := range parts[:2] {
		if !strings.HasPrefix(x, "/") || path.Clean(x) != x || slices.Contains(strings.Split(x, "/"), "..") {
			l.errorf(p, "bind %q: %q is not an absolute clean path", b, x)
			return
		}
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			if !slices.Contains(MountFlags, o) {
				l.hintf(p, suggest(o, MountFlags), "bind %q: unknown option %q", b, o)
			}
		}
	}
}

// checkTmpfs validates "/PATH[:OPT,OPT]" with size= and mode= checked.
func (l *located) checkTmpfs(p keyPath, t string) {
	dst, opts, hasOpts := strings.Cut(t, ":")
	if !strings.HasPrefix(dst, "/") || path.Clean(dst) != dst || slices.Contains(strings.Split(dst, "/"), "..") {
		l.errorf(p, "tmpfs %q: %q is not an absolute clean path", t, dst)
		return
	}
	if !hasOpts {
		return
	}
	keyed := []string{"size", "mode", "nr_inodes", "nr_blocks", "uid", "gid"}
	for _, o := range strings.Split(opts, ",") {
		k, v, isKV := strings.Cut(o, "=")
		switch {
		case !isKV && slices.Contains(MountFlags, o):
		case isKV && k == "size":
			if pct, ok := strings.CutSuffix(v, "%"); ok {
				if pct == "" || strings.TrimLeft(pct, "0123456789") != "" {
					l.errorf(p, "tmpfs %q: size=%q is not a size or a percentage", t, v)
				}
			} else if _, err := ParseSize(v); err != nil {
				l.errorf(p, "tmpfs %q: %v", t, err)
			}
		case isKV && k == "mode":
			if _, err := ParseMode(v); err != nil {
				l.errorf(p, "tmpfs %q: %v", t, err)
			}
		case isKV && slices.Contains(keyed, k):
			if v == "" || strings.TrimLeft(v, "0123456789kmgKMG") != "" {
				l.errorf(p, "tmpfs %q: %s=%q is not a number", t, k, v)
			}
		default:
			l.hintf(p, suggest(k, append(slices.Clone(MountFlags), keyed...)), "tmpfs %q: unknown option %q", t, o)
		}
	}
}

func (l *located) checkDevice(p keyPath, d Device) {
	if !strings.HasPrefix(d.Path, "/dev/") {
		l.errorf(p.field("path"), "%q is not a path under /dev/", d.Path)
	} else {
		l.checkAbs(p.field("path"), d.Path)
	}
	if d.Type != "" && d.Type != "c" && d.Type != "b" {
		l.errorf(p.field("type"), "%q is not c or b", d.Type)
	}
	if d.Major != nil && *d.Major < 0 {
		l.errorf(p.field("major"), "must not be negative")
	}
	if d.Minor != nil && *d.Minor < 0 {
		l.errorf(p.field("minor"), "must not be negative")
	}
	if d.Permissions != "" && (strings.Trim(d.Permissions, "rwm") != "" || len(d.Permissions) > 3) {
		l.errorf(p.field("permissions"), "%q is not a combination of r, w and m", d.Permissions)
	}
}

// checkFiles validates [[file]] entries. A source is a relative path that
// stays inside the directory of the file naming it, so that a spec or
// package is a self-contained directory (hashable, lockable, portable).
func (l *located) checkFiles(lp keyPath, fs []File) {
	seen := map[string]keyPath{}
	for i, f := range fs {
		p := lp.entry(i, f.Path)
		if !l.has(p.field("path")) {
			l.errorf(p.field("path"), "required")
		} else {
			l.checkAbs(p.field("path"), f.Path)
			if f.Path == "/" {
				l.errorf(p.field("path"), "cannot replace /")
			}
			if prev, dup := seen[f.Path]; dup {
				l.errorf(p.field("path"), "duplicate file %q (first at line %d)", f.Path, l.lookup(prev).line)
			} else {
				seen[f.Path] = p.field("path")
			}
		}
		var set []string
		if f.Contents != nil {
			set = append(set, "contents")
		}
		if l.has(p.field("source")) {
			set = append(set, "source")
		}
		if l.has(p.field("symlink")) {
			set = append(set, "symlink")
		}
		if f.Directory {
			set = append(set, "directory")
		}
		if len(set) != 1 {
			l.errorf(p, "set exactly one of contents, source, symlink or directory (got %s)", describeSet(set))
		}
		if l.has(p.field("source")) {
			switch {
			case f.Source == "":
				l.errorf(p.field("source"), "empty path")
			case filepath.IsAbs(f.Source) || strings.HasPrefix(f.Source, "/"):
				l.errorf(p.field("source"), "%q: source must be relative to the file's directory", f.Source)
			case !filepath.IsLocal(f.Source):
				l.errorf(p.field("source"), "%q escapes the file's directory", f.Source)
			}
		}
		if l.has(p.field("symlink")) && f.Symlink == "" {
			l.errorf(p.field("symlink"), "empty target")
		}
		if f.Mode.IsSet() && f.Symlink != "" {
			l.errorf(p.field("mode"), "a symlink has no mode")
		}
	}
}

func describeSet(set []string) string {
	if len(set) == 0 {
		return "none"
	}
	return strings.Join(set, " and ")
}

// checkPackage validates a package.toml.
func (l *located) checkPackage(pk *Package) {
	root := keyPath{}
	l.checkName(root.field("name"), pk.Name)
	l.checkIncludes(root.field("include"), pk.Include)
	for i, g := range pk.Go {
		p := root.field("go").entry(i, g.Dest)
		if g.Main == "" {
			l.errorf(p.field("main"), "required")
		}
		if !l.has(p.field("dest")) {
			l.errorf(p.field("dest"), "required")
		} else {
			l.checkAbs(p.field("dest"), g.Dest)
		}
		for j, t := range g.Tags {
			if t == "" || strings.ContainsAny(t, " ,") {
				l.errorf(p.field("tags").elem(j), "%q is not a build tag", t)
			}
		}
	}
	if d := pk.Debian; d != nil {
		dp := root.field("debian")
		if len(d.Packages) == 0 {
			l.errorf(dp.field("packages"), "required (at least one package)")
		}
		for _, key := range []string{"packages", "exclude"} {
			names := d.Packages
			if key == "exclude" {
				names = d.Exclude
			}
			for i, n := range names {
				if n == "" || strings.ContainsAny(n, " \t,/") {
					l.errorf(dp.field(key).elem(i), "%q is not a Debian package name", n)
				}
			}
		}
		for i, c := range d.Components {
			if c == "" || strings.ContainsAny(c, " \t,/") {
				l.errorf(dp.field("components").elem(i), "%q is not an archive component", c)
			}
		}
		if l.has(dp.field("suite")) && (d.Suite == "" || strings.ContainsAny(d.Suite, " /")) {
			l.errorf(dp.field("suite"), "%q is not a suite name", d.Suite)
		}
		for _, key := range []string{"paths", "paths-exclude"} {
			paths := d.Paths
			if key == "paths-exclude" {
				paths = d.PathsExclude
			}
			for i, x := range paths {
				if !strings.HasPrefix(x, "/") {
					l.errorf(dp.field(key).elem(i), "%q is not an absolute path", x)
				} else if _, err := path.Match(x, ""); err != nil {
					l.errorf(dp.field(key).elem(i), "%q: %v", x, err)
				}
			}
		}
	}
	l.checkFiles(root.field("file"), pk.Files)
	if pk.Accounts != nil {
		l.checkAccounts(root.field("accounts"), pk.Accounts)
	}
	cp := root.field("config")
	l.checkConfig(cp, &pk.Config)
	if v := pk.Config.Seccomp; v != nil && strings.HasSuffix(*v, ".json") {
		l.errorf(cp.field("seccomp"), "%q: a package sets default or unconfined; a profile file is named by the spec's entry", *v)
	}
	if b := pk.Build; b != nil {
		bp := root.field("build")
		switch {
		case !l.has(bp.field("from")), b.From == "base":
		case b.From == "scratch", IsLocalRef(b.From), validImageRef(b.From):
			if len(pk.Go) > 0 || pk.Debian != nil || len(pk.Files) > 0 {
				l.errorf(bp.field("from"), "%q: the package's [[go]], [debian] and [[file]] parts are the base of its build: set from = \"base\" or drop them", b.From)
			}
		default:
			l.errorf(bp.field("from"), "%q: want \"scratch\", \"base\", a package directory (./dir, ../dir) or an image reference", b.From)
		}
		if len(b.Steps) == 0 {
			l.errorf(bp, "needs at least one [[build.step]]")
		}
		for i, s := range b.Steps {
			sp := bp.field("step").entry(i, "")
			switch {
			case s.Run != "" && s.Copy != "":
				l.errorf(sp, "set run or copy, not both")
			case s.Run == "" && s.Copy == "":
				l.errorf(sp, "set run or copy")
			}
			if s.To != "" && s.Copy == "" {
				l.errorf(sp.field("to"), "to needs copy")
			}
			if s.FromPk != "" && s.Copy == "" {
				l.errorf(sp.field("from"), "from needs copy")
			}
			if s.Copy != "" && s.To == "" {
				l.errorf(sp.field("to"), "required with copy")
			}
			if s.Copy != "" && s.FromPk == "" && (strings.HasPrefix(s.Copy, "/") || !filepath.IsLocal(s.Copy)) {
				l.errorf(sp.field("copy"), "%q: a path inside the package directory, relative to it", s.Copy)
			}
			if s.FromPk != "" && !IsLocalRef(s.FromPk) && !validImageRef(s.FromPk) {
				l.errorf(sp.field("from"), "%q: want a package directory (./dir, ../dir) or an image reference", s.FromPk)
			}
			if s.To != "" {
				l.checkAbs(sp.field("to"), s.To)
			}
			if s.Cwd != "" {
				l.checkAbs(sp.field("cwd"), s.Cwd)
			}
			for j, c := range s.Cache {
				l.checkAbs(sp.field("cache").elem(j), c)
			}
			for j, e := range s.Env {
				if k, _, ok := strings.Cut(e, "="); !ok || !envKeyRE.MatchString(k) {
					l.errorf(sp.field("env").elem(j), "%q is not KEY=value", e)
				}
			}
		}
		for i, o := range b.Output {
			l.checkAbs(bp.field("output").elem(i), o)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// IsLocalRef reports whether a package.toml reference names a package
// directory (relative to the package's own directory) rather than an image.
func IsLocalRef(ref string) bool { return ImageRef{Ref: ref}.IsLocal() }

// imageRefRE is a loose check of a registry reference: lower-case
// repository path, optional tag and digest.
var imageRefRE = regexp.MustCompile(`^[a-z0-9]+([._:/-][a-zA-Z0-9]+)*(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$`)

func validImageRef(ref string) bool {
	return ref != "scratch" && ref != "base" && imageRefRE.MatchString(ref)
}
