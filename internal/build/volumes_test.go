package build

import (
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keelos/keel/internal/disk"
	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// TestVolumeBindsRunFromTheMountPoint checks that a bind naming a volume
// becomes a bind of the volume's mount point in config.json, that
// --dry-run still shows the name, and that a name no volume has is an
// error naming the bind.
func TestVolumeBindsRunFromTheMountPoint(t *testing.T) {
	vols := []spec.Volume{{Name: "data"}}
	cf := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"/app"}}}
	c := spec.Container{Name: "app", Config: spec.Config{Binds: []string{"data:/var/lib/app:rw", "/etc/x:/etc/x:ro"}}}
	cc, err := effectiveConfig("service", c, source.Package, cf, vols, nil)
	if err != nil {
		t.Fatal(err)
	}
	var binds []string
	for _, m := range cc.oci.Mounts {
		if m.Type == "bind" && m.Destination != "/sys" {
			binds = append(binds, m.Source+":"+m.Destination)
		}
	}
	if want := []string{"/var/lib/keel/volumes/data:/var/lib/app", "/etc/x:/etc/x"}; !slices.Equal(binds, want) {
		t.Errorf("config.json binds %q, want %q", binds, want)
	}
	if !slices.Equal(cc.shown.Binds, c.Binds) {
		t.Errorf("shown binds %q, want the spec's %q", cc.shown.Binds, c.Binds)
	}
	c.Binds = []string{"cache:/c"}
	if _, err := effectiveConfig("service", c, source.Package, cf, vols, nil); err == nil || !strings.Contains(err.Error(), `bind "cache:/c": no [[volume]] is named "cache"`) {
		t.Errorf("unknown volume: %v", err)
	}
}

// TestVolumePartitions checks the disk plan a volume adds: a Linux
// filesystem partition named after it, of its size, with no content.
func TestVolumePartitions(t *testing.T) {
	var size spec.Size
	if err := size.UnmarshalText([]byte("64MiB")); err != nil {
		t.Fatal(err)
	}
	got := volumePartitions([]spec.Volume{{Name: "data", Size: size}})
	if len(got) != 1 || got[0].Name != "data" || got[0].Type != disk.TypeLinuxFilesystem || got[0].Size != 64<<20 || got[0].Content != nil {
		t.Errorf("got %+v", got)
	}
	if req, _ := volumeModules(nil); req != nil {
		t.Errorf("modules without volumes: %v", req)
	}
	if req, _ := volumeModules([]spec.Volume{{Name: "data"}}); !slices.Equal(req, []string{"ext4"}) {
		t.Errorf("modules with a volume: %v", req)
	}
}
