package build

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// TestMobyLabelPrecedence checks the order a container's settings come
// in: the spec entry over org.keel.config over org.mobyproject.config
// over the image config, each shown with where it came from, and that a
// pulled image's LinuxKit label widens privileges only where the spec
// allows it.
func TestMobyLabelPrecedence(t *testing.T) {
	cf := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"/probe"}, Labels: map[string]string{
		imagelabel.MobyConfig: `{"capabilities":["CAP_NET_ADMIN"],"binds":["/etc/keel:/host-keel:ro"],"readonly":true,"cwd":"/moby","hostname":"moby"}`,
		imagelabel.Config:     `{"cwd":"/keel","hostname":"keel"}`,
	}}}
	c := spec.Container{Name: "probe", Image: spec.ImageRef{Ref: "reg.example/probe:1"},
		Config: spec.Config{Hostname: ptr("spec")}}

	_, err := effectiveConfig("service", c, source.Registry, cf, nil, []string{"build.toml"})
	for _, want := range []string{"label " + imagelabel.MobyConfig + " sets", `capabilities = ["CAP_NET_ADMIN"]`, `binds = ["/etc/keel:/host-keel:ro"]`,
		`allow-image-privileges = ["capabilities", "binds"]`, `[[service]] entry named "probe" in build.toml`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("unallowed LinuxKit label: error %v, want it to say %q", err, want)
		}
	}

	c.AllowImagePrivileges = []string{"capabilities", "binds"}
	cc, err := effectiveConfig("service", c, source.Registry, cf, nil, []string{"build.toml"})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"hostname":     "spec",
		"cwd":          "/keel",
		"readonly":     "true",
		"capabilities": "CAP_NET_ADMIN",
		"binds":        "/etc/keel:/host-keel:ro",
		"command":      "/probe",
	} {
		got := ""
		for _, s := range cc.shown.Settings() {
			if s.Key == key {
				got = s.Value
			}
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	for key, want := range map[string]string{
		"hostname":     fromSpec,
		"cwd":          fromUntrusted,
		"readonly":     "image label org.mobyproject.config (untrusted)",
		"capabilities": "image label org.mobyproject.config (untrusted; allowed by allow-image-privileges)",
		"command":      fromImageConfig,
	} {
		if cc.from[key] != want {
			t.Errorf("%s from %q, want %q", key, cc.from[key], want)
		}
	}
	if !cc.oci.Root.Readonly || !strings.Contains(strings.Join(cc.oci.Process.Capabilities.Effective, " "), "CAP_NET_ADMIN") {
		t.Errorf("config.json: readonly %v, effective capabilities %v", cc.oci.Root.Readonly, cc.oci.Process.Capabilities.Effective)
	}

	// A bad LinuxKit label is an error naming it, even from a package.
	cf.Config.Labels[imagelabel.MobyConfig] = `{"capabilities":["CAP_NET_ADMIN"],"privileged":true}`
	if _, err := effectiveConfig("service", c, source.Package, cf, nil, nil); err == nil || !strings.Contains(err.Error(), "label org.mobyproject.config:1:35: privileged: unknown key") {
		t.Errorf("unknown key: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
