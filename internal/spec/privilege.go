package spec

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The trust model of image configuration: the spec and the package
// directories it names are the user's own source; the org.keel.config
// label of a pulled image (a registry reference, an OCI layout directory,
// an image archive) is someone else's. Such a label may set any container
// key, validated as the spec's are, except that the keys below, when they
// widen what the container may do to the host, are honoured only where
// the spec entry allows them (allow-image-privileges) or sets them itself.

// imagePrivilege is one key of an untrusted label that can widen the
// container's privileges, and when a value does.
type imagePrivilege struct {
	key    string
	widens func(c *Config, img ImageConfig) bool
}

// imagePrivileges is the one list of privilege keys: a new key that can
// widen privilege is one line here.
var imagePrivileges = []imagePrivilege{
	{"capabilities", func(c *Config, _ ImageConfig) bool { return len(c.Capabilities) > 0 }},
	{"ambient", func(c *Config, _ ImageConfig) bool { return len(c.Ambient) > 0 }},
	{"net", func(c *Config, _ ImageConfig) bool { return notNewNamespace(c.Net) }},
	{"pid", func(c *Config, _ ImageConfig) bool { return notNewNamespace(c.Pid) }},
	{"ipc", func(c *Config, _ ImageConfig) bool { return notNewNamespace(c.Ipc) }},
	{"uts", func(c *Config, _ ImageConfig) bool { return notNewNamespace(c.Uts) }},
	{"cgroup", func(c *Config, _ ImageConfig) bool { return notNewNamespace(c.Cgroup) }},
	{"binds", func(c *Config, _ ImageConfig) bool { return len(c.Binds) > 0 }},
	{"mounts", func(c *Config, _ ImageConfig) bool { return len(c.Mounts) > 0 }},
	{"devices", func(c *Config, _ ImageConfig) bool { return len(c.Devices) > 0 }},
	{"runtime", func(c *Config, _ ImageConfig) bool { return c.Runtime != nil }},
	{"sysctl", func(c *Config, _ ImageConfig) bool { return len(c.Sysctl) > 0 }},
	{"uid", func(c *Config, img ImageConfig) bool { return c.UID != nil && *c.UID == 0 && !img.runsAs(true) }},
	{"gid", func(c *Config, img ImageConfig) bool { return c.GID != nil && *c.GID == 0 && !img.runsAs(false) }},
	{"additional-gids", func(c *Config, img ImageConfig) bool {
		return slices.Contains(c.AdditionalGIDs, 0) && !img.runsAs(false)
	}},
	{"oom-score-adj", func(c *Config, _ ImageConfig) bool { return c.OOMScoreAdj != nil && *c.OOMScoreAdj < 0 }},
	{"rlimits", func(c *Config, _ ImageConfig) bool { return len(c.Rlimits) > 0 }},
	{"no-new-privileges", func(c *Config, _ ImageConfig) bool { return c.NoNewPrivileges != nil && !*c.NoNewPrivileges }},
	{"seccomp", func(c *Config, _ ImageConfig) bool { return c.Seccomp != nil && *c.Seccomp == "unconfined" }},
}

// AllPrivileges, in allow-image-privileges, allows every privilege key.
const AllPrivileges = "all"

// ImagePrivilegeKeys returns the container keys an untrusted image label
// may set to widen privilege only with the spec entry's allowance: the
// values of allow-image-privileges besides "all".
func ImagePrivilegeKeys() []string {
	keys := make([]string, len(imagePrivileges))
	for i, p := range imagePrivileges {
		keys[i] = p.key
	}
	return keys
}

// notNewNamespace reports a namespace key that shares the host's
// namespace or joins one by path rather than making its own; unset means
// "new".
func notNewNamespace(v *string) bool { return v != nil && *v != "new" }

// Setting is one container key and its value, written as inline TOML.
type Setting struct{ Key, Value string }

func (s Setting) String() string { return s.Key + " = " + s.Value }

// RefusedImagePrivileges returns the settings of an untrusted image's
// label that widen the container's privileges and that the spec entry c
// neither allows (allow-image-privileges) nor sets itself (its own value
// wins over the label's). img is the image's own config: a label asking
// for uid 0 widens nothing when the image runs as root already.
func (c Container) RefusedImagePrivileges(label Config, img ImageConfig) []Setting {
	var out []Setting
	for _, p := range imagePrivileges {
		if !p.widens(&label, img) || !configKey(&c.Config, p.key).IsNil() || c.allowsImagePrivilege(p.key) {
			continue
		}
		out = append(out, Setting{Key: p.key, Value: inlineTOML(configKey(&label, p.key))})
	}
	return out
}

// allowsImagePrivilege reports whether the entry lets an untrusted label
// set key.
func (c Container) allowsImagePrivilege(key string) bool {
	return slices.Contains(c.AllowImagePrivileges, key) || slices.Contains(c.AllowImagePrivileges, AllPrivileges)
}

var configFields = fieldsOf(reflect.TypeFor[Config]())

// configKey returns the field of c with the TOML key; it panics on a key
// Config does not have (a wrong entry in imagePrivileges).
func configKey(c *Config, key string) reflect.Value {
	for _, f := range configFields {
		if f.name == key {
			return reflect.ValueOf(c).Elem().FieldByIndex(f.index)
		}
	}
	panic("spec: Config has no key " + key)
}

// Settings returns every key c sets, in the order of the type, each with
// its value as inline TOML.
func (c Config) Settings() []Setting {
	var out []Setting
	v := reflect.ValueOf(&c).Elem()
	for _, f := range configFields {
		fv := v.FieldByIndex(f.index)
		if omit(f, fv) {
			continue
		}
		out = append(out, Setting{Key: f.name, Value: inlineTOML(fv)})
	}
	return out
}

// inlineTOML writes a value on one line: tables as inline tables without
// their unset keys.
func inlineTOML(v reflect.Value) string {
	switch {
	case v.Kind() == reflect.Pointer && v.IsNil():
		return ""
	case v.Kind() == reflect.Pointer:
		return inlineTOML(v.Elem())
	case isRecord(v.Type()):
		var parts []string
		for _, f := range fieldsOf(v.Type()) {
			fv := v.FieldByIndex(f.index)
			if !omit(f, fv) {
				parts = append(parts, tomlKey(f.name)+" = "+inlineTOML(fv))
			}
		}
		if len(parts) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	case v.Kind() == reflect.Slice && isRecord(v.Type().Elem()):
		parts := make([]string, v.Len())
		for i := range v.Len() {
			parts[i] = inlineTOML(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	var e encoder
	e.inline(v)
	return e.buf.String()
}

// ImageConfig is what keel takes from an image's own OCI config: the
// settings a container gets when neither the label nor the spec sets
// them (command, env, cwd, uid and gid).
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string // "USER[:GROUP]", each a number or a name
}

// imageUserRE is an OCI config User: a user and an optional group, each a
// number or a name.
var imageUserRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)

// Check validates the image config's runtime settings by the rules of
// the keys they stand for (env, cwd, command); origin names the image in
// errors. A problem is returned as Errors.
func (ic ImageConfig) Check(origin string) error {
	l := newLocated(origin)
	root := keyPath{}
	for i, e := range ic.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || !envKeyRE.MatchString(k) {
			l.errorf(root.field("Env").elem(i), "%q is not KEY=value", e)
		}
	}
	if ic.WorkingDir != "" {
		l.checkAbs(root.field("WorkingDir"), ic.WorkingDir)
	}
	if ic.User != "" {
		if _, _, err := ParseImageUser(ic.User); err != nil {
			l.errorf(root.field("User"), "%v", err)
		}
	}
	// The program is the first of Entrypoint and Cmd together.
	l.checkCommand(root.field("Entrypoint"), ic.Entrypoint, true)
	l.checkCommand(root.field("Cmd"), ic.Cmd, len(ic.Entrypoint) == 0)
	if len(l.errs) > 0 {
		for _, e := range l.errs {
			e.Line, e.Col = 0, 0 // a config has no lines: the key path says where
		}
		return l.errs
	}
	return nil
}

// ParseImageUser reads an image config's User as keel's runtime applies
// it: "" is root (uid 0, gid 0), a user without a group has gid 0. A
// name, which only the image's /etc/passwd could resolve, gives nil.
func ParseImageUser(user string) (uid, gid *uint32, err error) {
	zero := uint32(0)
	if user == "" {
		return &zero, &zero, nil
	}
	if !imageUserRE.MatchString(user) {
		return nil, nil, fmt.Errorf("%q is not USER[:GROUP] (numbers or names)", user)
	}
	id := func(s string) (*uint32, error) {
		if strings.Trim(s, "0123456789") != "" {
			return nil, nil // a name
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q: id out of range (0 to %d)", user, uint32(math.MaxUint32))
		}
		v := uint32(n)
		return &v, nil
	}
	us, gs, hasGroup := strings.Cut(user, ":")
	if uid, err = id(us); err != nil {
		return nil, nil, err
	}
	gid = &zero
	if hasGroup {
		if gid, err = id(gs); err != nil {
			return nil, nil, err
		}
	}
	return uid, gid, nil
}

// runsAs reports whether the image already runs as uid 0 (user) or gid 0
// (!user); a name counts as not root.
func (ic ImageConfig) runsAs(user bool) bool {
	uid, gid, err := ParseImageUser(ic.User)
	id := gid
	if user {
		id = uid
	}
	return err == nil && id != nil && *id == 0
}
