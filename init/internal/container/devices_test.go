package container

import (
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/runtimeconfig"
	"github.com/keelos/keel/internal/spec"
)

// TestHostDevicesTakeTheBuildersMode checks that a device resolved on the
// machine gets the mode the configuration gave it, as the builder wrote
// it into config.json, and the host node's mode otherwise.
func TestHostDevicesTakeTheBuildersMode(t *testing.T) {
	cfg := spec.Config{Command: []string{"/x"}, Devices: []spec.Device{
		{Path: "/dev/null", Mode: spec.MustParse[spec.FileMode]("0600")},
		{Path: "/dev/zer*"},
	}}
	s, err := runtimeconfig.Generate("a", layout.KindService, cfg, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	devs, err := hostDevices(s)
	if err != nil {
		t.Fatal(err)
	}
	var zero unix.Stat_t
	if err := unix.Stat("/dev/zero", &zero); err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 {
		t.Fatalf("devices %+v, want /dev/null and /dev/zero", devs)
	}
	if d := devs[0]; d.Path != "/dev/null" || d.Type != "c" || d.Major != 1 || d.Minor != 3 || *d.FileMode != 0o600 {
		t.Errorf("/dev/null: %+v mode %v, want c 1:3 mode 0600", d, *d.FileMode)
	}
	if d := devs[1]; d.Path != "/dev/zero" || d.Major != 1 || d.Minor != 5 || *d.FileMode != os.FileMode(zero.Mode&0o777) {
		t.Errorf("/dev/zero: %+v mode %v, want 1:5 with the host's mode %o", d, *d.FileMode, zero.Mode&0o777)
	}
}
