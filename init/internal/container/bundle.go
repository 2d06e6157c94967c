// Package container is init's container runtime: it runs an OCI bundle
// (config.json + rootfs) written by keel's builder, with namespaces, a
// cgroup v2 group, pivot_root, mounts, capabilities and credentials set up
// by a re-executed first stage of init itself.
package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelos/keel/internal/layout"
)

// Bundle is one container directory (layout.BundleConfig,
// layout.BundleRootfs, layout.BundleSeccomp).
type Bundle struct {
	Name    string
	Dir     string // absolute
	Spec    *specs.Spec
	Restart string          // layout.RestartAlways, RestartOnFailure or RestartNever
	Runtime *layout.Runtime // nil when unset
}

// Load reads the bundle in dir. The name comes from the
// layout.AnnotationName annotation, else from the directory's name
// (layout.BundleName).
func Load(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	data, err := os.ReadFile(filepath.Join(abs, layout.BundleConfig))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("bundle %s: %s: %w", dir, layout.BundleConfig, err)
	}
	if s.Process == nil || len(s.Process.Args) == 0 {
		return nil, fmt.Errorf("bundle %s: %s has no process args", dir, layout.BundleConfig)
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("bundle %s: %s has no root path", dir, layout.BundleConfig)
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	b := &Bundle{Name: s.Annotations[layout.AnnotationName], Dir: abs, Spec: &s, Restart: s.Annotations[layout.AnnotationRestart]}
	if b.Name == "" {
		b.Name = layout.BundleName(filepath.Base(abs))
	}
	if b.Restart == "" {
		b.Restart = layout.RestartNever
	}
	if r := s.Annotations[layout.AnnotationRuntime]; r != "" {
		b.Runtime = &layout.Runtime{}
		if err := json.Unmarshal([]byte(r), b.Runtime); err != nil {
			return nil, fmt.Errorf("bundle %s: %s annotation: %w", dir, layout.AnnotationRuntime, err)
		}
	}
	return b, nil
}

// LoadAll loads every bundle under dir, in name order (the builder's
// layout.OrderedBundle names make that the spec's order). A missing dir holds no bundles.
func LoadAll(dir string) ([]*Bundle, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	var out []*Bundle
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := Load(filepath.Join(dir, e.Name()))
		if err != nil {
			return out, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Rootfs is the absolute path of the bundle's root filesystem.
func (b *Bundle) Rootfs() string {
	if filepath.IsAbs(b.Spec.Root.Path) {
		return b.Spec.Root.Path
	}
	return filepath.Join(b.Dir, b.Spec.Root.Path)
}

func readFirstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(b)
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
