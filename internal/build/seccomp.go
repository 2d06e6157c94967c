package build

import (
	"bytes"
	"fmt"
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/runtimeconfig"
	"github.com/keelos/keel/internal/seccomp"
	"github.com/keelos/keel/internal/spec"
)

// addSeccomp compiles the seccomp profile oci names for a container
// holding its capabilities on arch, puts the program in dir as
// layout.BundleSeccomp and records its digest in oci. An unconfined container gets none.
func addSeccomp(root *fstree.Tree, dir, arch string, c spec.Container, oci *specs.Spec) error {
	name := oci.Annotations[layout.AnnotationSeccomp]
	var p *seccomp.Profile
	switch name {
	case layout.SeccompUnconfined:
		return nil
	case layout.SeccompDefault:
		p = seccomp.Default()
	default:
		// A profile file is the spec's: c.Image.Dir is the directory of
		// the spec file that holds the entry.
		if c.Seccomp == nil || *c.Seccomp != name {
			return fmt.Errorf("seccomp %q: the image's configuration names a profile file; name it in the spec entry (seccomp = \"FILE.json\", relative to the spec)", name)
		}
		var err error
		if p, err = seccomp.ReadFile(c.Image.Dir, name); err != nil {
			return err
		}
	}
	var caps []string
	if oci.Process.Capabilities != nil {
		caps = oci.Process.Capabilities.Bounding
	}
	prog, err := seccomp.Compile(p, arch, caps)
	if err != nil {
		return fmt.Errorf("seccomp profile %s: %w", name, err)
	}
	runtimeconfig.SetSeccompProgram(oci, prog)
	return root.AddFile(path.Join(dir, layout.BundleSeccomp), 0o644, 0, 0, bytes.NewReader(prog))
}
