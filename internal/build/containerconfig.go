package build

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/linuxkit"
	"github.com/keelos/keel/internal/runtimeconfig"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// Where a container setting came from, as --dry-run shows it.
const (
	fromSpec        = "spec"
	fromPackage     = "package [config]"
	fromUntrusted   = "image label (untrusted)"
	fromAllowed     = "image label (untrusted; allowed by allow-image-privileges)"
	fromMoby        = "image label " + imagelabel.MobyConfig
	fromImageConfig = "image config"
	fromDefault     = "keel's default"
)

// containerConfig is a container's effective runtime configuration: its
// image's org.mobyproject.config label (LinuxKit's) overridden key by key
// by its org.keel.config label, both by the spec entry, with the image's
// own config for what none sets, each part checked.
type containerConfig struct {
	oci *specs.Spec // config.json
	// shown is the configuration as the container runs with it: the
	// label and spec keys, and the command, env, cwd, uid and gid of oci.
	shown spec.Config
	from  map[string]string // key of shown → where its value came from
}

// effectiveConfig checks and merges the configuration of the container c
// of the given kind, whose image came from origin and has the config cf.
// The label of an image not built from a package directory is untrusted:
// the keys in it that widen privilege must be allowed or set by the spec
// entry. specFiles name the spec in the error that says how to allow them.
// A bind may name one of volumes as its source.
func effectiveConfig(kind string, c spec.Container, origin source.Origin, cf *v1.ConfigFile, volumes []spec.Volume, specFiles []string) (*containerConfig, error) {
	what := fmt.Sprintf("image %s (%s)", c.Image.Ref, origin)
	img := spec.ImageConfig{
		Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, Env: cf.Config.Env,
		WorkingDir: cf.Config.WorkingDir, User: cf.Config.User,
	}
	if err := img.Check(what + " config"); err != nil {
		return nil, err
	}
	var keelLabel, mobyLabel spec.Config
	if data := cf.Config.Labels[imagelabel.Config]; data != "" {
		var err error
		if keelLabel, err = spec.ParseLabel(what+" label "+imagelabel.Config, []byte(data)); err != nil {
			return nil, err
		}
	}
	if data := cf.Config.Labels[imagelabel.MobyConfig]; data != "" {
		var err error
		if mobyLabel, err = linuxkit.ParseLabel(kind, what+" label "+imagelabel.MobyConfig, []byte(data)); err != nil {
			return nil, err
		}
	}
	label := mobyLabel.Override(keelLabel)
	// A key of the LinuxKit label counts where keel's label leaves it unset.
	fromKeel := func(key string) bool {
		return slices.ContainsFunc(keelLabel.Settings(), func(s spec.Setting) bool { return s.Key == key })
	}
	if !origin.Trusted() {
		for _, l := range []struct {
			name   string
			config spec.Config
			counts func(string) bool
		}{
			{imagelabel.Config, keelLabel, func(string) bool { return true }},
			{imagelabel.MobyConfig, mobyLabel, func(k string) bool { return !fromKeel(k) }},
		} {
			var refused []spec.Setting
			for _, s := range c.RefusedImagePrivileges(l.config, img) {
				if l.counts(s.Key) {
					refused = append(refused, s)
				}
			}
			if len(refused) > 0 {
				return nil, refusedError(kind, c, what, l.name, refused, specFiles)
			}
		}
	}
	merged := label.Override(c.Config)
	if err := merged.CheckSysctls(); err != nil {
		return nil, err
	}
	// A bind of a volume by name runs as a bind of the volume's mount
	// point; what --dry-run shows keeps the name.
	run := merged
	var err error
	if run.Binds, err = spec.ResolveVolumeBinds(merged.Binds, volumes); err != nil {
		return nil, err
	}
	oci, err := runtimeconfig.Generate(c.Name, kind, run, cf.Config)
	if err != nil {
		return nil, err
	}

	cc := &containerConfig{oci: oci, shown: merged, from: map[string]string{}}
	// What the label would widen were nothing allowed or set by the entry.
	widening := (spec.Container{}).RefusedImagePrivileges(label, img)
	for _, s := range label.Settings() {
		switch {
		case origin.Trusted():
			cc.from[s.Key] = fromPackage
		case slices.ContainsFunc(widening, func(w spec.Setting) bool { return w.Key == s.Key }):
			cc.from[s.Key] = fromAllowed
		default:
			cc.from[s.Key] = fromUntrusted
		}
		if !fromKeel(s.Key) {
			cc.from[s.Key] = strings.Replace(cc.from[s.Key], "image label", fromMoby, 1)
			if origin.Trusted() {
				cc.from[s.Key] = fromMoby
			}
		}
	}
	for _, s := range c.Config.Settings() {
		cc.from[s.Key] = fromSpec
	}
	cc.showProcess(cf.Config)
	return cc, nil
}

// showProcess puts the command, environment, directory and user the
// container runs with into shown, naming the image config or keel's
// default where they came from when neither label nor spec set them.
func (cc *containerConfig) showProcess(img v1.Config) {
	p := cc.oci.Process
	orDefault := func(key string, fromImage bool) {
		switch {
		case cc.from[key] != "":
		case fromImage:
			cc.from[key] = fromImageConfig
		default:
			cc.from[key] = fromDefault
		}
	}
	if cc.shown.Command == nil {
		orDefault("command", true)
	}
	cc.shown.Command = p.Args
	var env []string // the environment is merged, not overridden
	if len(img.Env) > 0 {
		env = append(env, fromImageConfig)
	}
	if cc.from["env"] != "" {
		env = append(env, cc.from["env"])
	}
	cc.from["env"] = strings.Join(env, ", then ")
	if !slices.ContainsFunc(slices.Concat(img.Env, cc.shown.Env), func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		cc.from["env"] = strings.TrimPrefix(cc.from["env"]+" plus "+fromDefault+" PATH", " plus ")
	}
	cc.shown.Env = p.Env
	orDefault("cwd", img.WorkingDir != "")
	cc.shown.Cwd = &p.Cwd
	orDefault("uid", img.User != "")
	orDefault("gid", img.User != "")
	cc.shown.UID, cc.shown.GID = &p.User.UID, &p.User.GID
}

// refusedError says which privileges an untrusted label asks for and how
// the spec grants them.
func refusedError(kind string, c spec.Container, what, labelName string, refused []spec.Setting, specFiles []string) error {
	sets := make([]string, len(refused))
	keys := make([]string, len(refused))
	for i, s := range refused {
		sets[i] = s.String()
		keys[i] = strconv.Quote(s.Key)
	}
	file := "the spec file that defines it (" + strings.Join(specFiles, ", ") + ")"
	if len(specFiles) == 1 {
		file = specFiles[0]
	}
	them := "them"
	if len(refused) == 1 {
		them = "it"
	}
	return fmt.Errorf("%s is not the spec's own source, and its label %s sets %s, which would widen the container's privileges: "+
		"to grant %s, add allow-image-privileges = [%s] to the [[%s]] entry named %q in %s (or set %s in that entry yourself)",
		what, labelName, strings.Join(sets, ", "), them, strings.Join(keys, ", "), kind, c.Name, file, them)
}
