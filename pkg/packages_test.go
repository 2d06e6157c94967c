// Package pkg_test checks keel's system packages and example specs
// against the spec schema, so a typo fails `go test` before any build.
package pkg_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keelos/keel/internal/spec"
)

func packageDirs(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob("*/package.toml")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, p := range m {
		dirs = append(dirs, filepath.Dir(p))
	}
	return dirs
}

func TestEveryPackageParses(t *testing.T) {
	dirs := packageDirs(t)
	if len(dirs) < 10 {
		t.Fatalf("found %d packages: %v", len(dirs), dirs)
	}
	for _, d := range dirs {
		pk, err := spec.LoadPackage(d)
		if err != nil {
			t.Errorf("%s: %v", d, err)
			continue
		}
		for _, f := range pk.Files {
			if f.Source == "" {
				continue
			}
			if _, err := os.Stat(f.SourcePath()); err != nil {
				t.Errorf("%s: file %s: %v", d, f.Path, err)
			}
		}
		for _, g := range pk.Go {
			if _, err := os.Stat(filepath.Join(d, g.Main, "main.go")); err != nil {
				t.Errorf("%s: go main %s: %v", d, g.Main, err)
			}
		}
	}
}

func TestExamplesParse(t *testing.T) {
	specs, err := filepath.Glob("../examples/*.toml")
	if err != nil || len(specs) < 4 {
		t.Fatalf("examples: %v %v", specs, err)
	}
	for _, f := range specs {
		s, err := spec.Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		refs := append([]spec.ImageRef{s.Kernel.Image}, s.Init...)
		for _, list := range [][]spec.Container{s.Onboot, s.Services, s.Onshutdown} {
			for _, c := range list {
				refs = append(refs, c.Image)
			}
		}
		for _, r := range refs {
			// ../init belongs to another part of the tree; the packages
			// and kernels are what this directory promises.
			if !r.IsLocal() || r.Ref == "../init" {
				continue
			}
			if _, err := os.Stat(filepath.Join(r.Path(), "package.toml")); err != nil {
				t.Errorf("%s: image %s: %v", f, r, err)
			}
		}
	}
}
