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

	"github.com/keelos/keel/internal/runtimeconfig"
	"github.com/keelos/keel/internal/spec"
)

// Bundle is one container directory: config.json and rootfs/.
type Bundle struct {
	Name    string
	Dir     string // absolute
	Spec    *specs.Spec
	Restart string        // always | on-failure | never
	Runtime *spec.Runtime // nil when unset
}

// Load reads dir/config.json. The name comes from the org.keel.name
// annotation, else from the directory name without its "NNN-" order prefix.
func Load(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	data, err := os.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("bundle %s: config.json: %w", dir, err)
	}
	if s.Process == nil || len(s.Process.Args) == 0 {
		return nil, fmt.Errorf("bundle %s: config.json has no process args", dir)
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("bundle %s: config.json has no root path", dir)
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	b := &Bundle{Name: s.Annotations[runtimeconfig.AnnotationName], Dir: abs, Spec: &s, Restart: s.Annotations[runtimeconfig.AnnotationRestart]}
	if b.Name == "" {
		b.Name = orderless(filepath.Base(abs))
	}
	if b.Restart == "" {
		b.Restart = "never"
	}
	if r := s.Annotations[runtimeconfig.AnnotationRuntime]; r != "" {
		b.Runtime = &spec.Runtime{}
		if err := json.Unmarshal([]byte(r), b.Runtime); err != nil {
			return nil, fmt.Errorf("bundle %s: %s annotation: %w", dir, runtimeconfig.AnnotationRuntime, err)
		}
	}
	return b, nil
}

// LoadAll loads every bundle under dir, in name order (the builder's NNN-
// prefixes make that the spec's order). A missing dir holds no bundles.
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

func orderless(base string) string {
	i := 0
	for i < len(base) && base[i] >= '0' && base[i] <= '9' {
		i++
	}
	if i > 0 && i < len(base)-1 && base[i] == '-' {
		return base[i+1:]
	}
	return base
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
