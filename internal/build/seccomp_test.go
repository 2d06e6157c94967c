package build

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/runtimeconfig"
	"github.com/keelos/keel/internal/spec"
)

func TestAddSeccomp(t *testing.T) {
	specDir := t.TempDir()
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(filepath.Join(specDir, "p.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		name         string
		label, entry *string
		want         string // "" none, "program", or an error
	}{
		{"default", nil, nil, "program"},
		{"unconfined", nil, str("unconfined"), ""},
		{"spec file", nil, str("p.json"), "program"},
		{"label file", str("p.json"), nil, "the image's configuration names a profile file"},
		{"missing file", nil, str("missing.json"), "no such file"},
	} {
		store, err := fstree.NewStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		root := fstree.New(store)
		ctr := spec.Container{Name: "svc", Image: spec.ImageRef{Ref: "./svc", Dir: specDir}, Config: spec.Config{Seccomp: c.entry}}
		merged := spec.Config{Command: []string{"/x"}, Seccomp: c.label}.Override(ctr.Config)
		oci, err := runtimeconfig.Generate("svc", layout.KindService, merged, v1.Config{})
		if err != nil {
			t.Fatal(err)
		}
		err = addSeccomp(root, "containers/services/svc", "amd64", ctr, oci)
		e, found := root.Get("containers/services/svc/" + layout.BundleSeccomp)
		switch c.want {
		case "":
			if err != nil || found || oci.Annotations[layout.AnnotationSeccompSHA256] != "" {
				t.Errorf("%s: err %v, program %v, want none", c.name, err, found)
			}
		case "program":
			if err != nil || !found {
				t.Fatalf("%s: err %v, program %v", c.name, err, found)
			}
			data, err := readEntry(root, e)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if got := oci.Annotations[layout.AnnotationSeccompSHA256]; got != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: digest annotation %q does not match the program", c.name, got)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), c.want) || found {
				t.Errorf("%s: err = %v, program %v; want no program and an error containing %q", c.name, err, found, c.want)
			}
		}
	}
}
