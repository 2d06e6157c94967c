package layout

import (
	"os/exec"
	"strings"
	"testing"
)

// module is keel's module path.
const module = "github.com/keelos/keel"

// goListDeps lists the packages pkgs import, directly or not, that are
// not in the standard library.
func goListDeps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

// The contract is what both sides import: it may depend on nothing of
// the builder, only on the kernel's numbers and the OCI types.
func TestLayoutDependsOnNoBuilderCode(t *testing.T) {
	for _, p := range goListDeps(t, "./internal/layout") {
		switch {
		case p == module+"/internal/layout",
			strings.HasPrefix(p, "golang.org/x/sys/"),
			strings.HasPrefix(p, "github.com/opencontainers/runtime-spec/"):
		default:
			t.Errorf("internal/layout imports %s", p)
		}
	}
}

// PID 1 links the contract and its own packages, not the builder's
// schema, TOML or registry code. Beside the contract's own imports it
// needs netlink (a container's interfaces) and the zstd and xz decoders
// (compressed kernel modules).
func TestInitLinksOnlyTheContract(t *testing.T) {
	deps := goListDeps(t, "./init/...")
	if len(deps) == 0 {
		t.Fatal("go list -deps ./init/... listed nothing")
	}
	for _, p := range deps {
		switch {
		case strings.HasPrefix(p, module+"/init/"), p == module+"/internal/layout",
			p == module+"/internal/blockdev", // a leaf (standard library only), shared with pkg/
			strings.HasPrefix(p, "golang.org/x/sys/"),
			strings.HasPrefix(p, "github.com/opencontainers/runtime-spec/"),
			strings.HasPrefix(p, "github.com/vishvananda/netlink"),
			strings.HasPrefix(p, "github.com/vishvananda/netns"),
			strings.HasPrefix(p, "github.com/klauspost/compress"),
			strings.HasPrefix(p, "github.com/ulikunitz/xz"):
		default:
			t.Errorf("init links %s", p)
		}
	}
}
