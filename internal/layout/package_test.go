package layout_test

import (
	"path"
	"testing"

	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/spec"
)

// The init package puts PID 1 and keel-ctl where the contract says, and
// keel-ctl is a link to init that starts it under the name that selects
// its client mode.
func TestInitPackageFollowsTheLayout(t *testing.T) {
	p, err := spec.LoadPackage("../../init")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Go) != 1 || p.Go[0].Dest != "/"+layout.Init {
		t.Errorf("init package builds %+v, want one binary, /%s", p.Go, layout.Init)
	}
	if path.Base(layout.KeelCtl) != layout.CtlName || layout.CtlTarget != "/"+layout.Init {
		t.Errorf("keel-ctl at /%s, a link to %s, runs as %s", layout.KeelCtl, layout.CtlTarget, layout.CtlName)
	}
	found := false
	for _, f := range p.Files {
		if f.Path == "/"+layout.KeelCtl {
			found = true
			if f.Symlink != layout.CtlTarget {
				t.Errorf("/%s: symlink %q, want %q", layout.KeelCtl, f.Symlink, layout.CtlTarget)
			}
		}
	}
	if !found {
		t.Errorf("the init package has no /%s", layout.KeelCtl)
	}
}
