package linuxkit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/keelos/keel/internal/spec"
)

// A Mapping replaces an image reference of the YAML by another: a keel
// package directory, another registry reference, or nothing (To "", which
// drops the init image or container).
type Mapping struct {
	From string // an image, with or without tag or digest, or LinuxKit's "@pkg:DIR"
	To   string
}

// ParseMapping reads FROM=TO.
func ParseMapping(s string) (Mapping, error) {
	from, to, ok := strings.Cut(s, "=")
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	switch {
	case !ok:
		return Mapping{}, fmt.Errorf("%q: want FROM=TO (TO empty to drop the image)", s)
	case from == "":
		return Mapping{}, fmt.Errorf("%q: empty FROM", s)
	}
	return Mapping{From: from, To: to}, nil
}

// How closely a mapping's From matches a reference: the closest mapping
// is used.
const (
	noMatch = iota
	repoMatch
	refMatch
	exactMatch
)

// match says how From matches ref: the same string, the same image once
// both are canonical (docker.io/library/… filled in), or the same
// repository when From has no tag or digest.
func (m Mapping) match(ref string) int {
	if m.From == ref {
		return exactMatch
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return noMatch
	}
	last := m.From[strings.LastIndex(m.From, "/")+1:]
	if strings.ContainsAny(last, ":@") {
		if f, err := name.ParseReference(m.From); err == nil && f.Name() == r.Name() {
			return refMatch
		}
		return noMatch
	}
	if repo, err := name.NewRepository(m.From); err == nil && repo.Name() == r.Context().Name() {
		return repoMatch
	}
	return noMatch
}

// checkMappings refuses two mappings from the same reference.
func checkMappings(ms []Mapping) error {
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.From] {
			return fmt.Errorf("--image-map %s given twice", m.From)
		}
		seen[m.From] = true
	}
	return nil
}

// mapImage returns the reference an image of the YAML becomes, and
// whether a mapping named it (to "" when it is dropped).
func (c *converter) mapImage(ref string) (string, bool) {
	best, bestI := noMatch, -1
	for i, m := range c.opts.ImageMap {
		if q := m.match(ref); q > best {
			best, bestI = q, i
		}
	}
	if bestI < 0 {
		return ref, false
	}
	c.used[bestI] = true
	return c.opts.ImageMap[bestI].To, true
}

// checkRef reports a reference of the YAML that keel cannot use as it is:
// a LinuxKit package template, or no image reference at all.
func (c *converter) checkRef(ref string, at value, p string) bool {
	switch {
	case strings.HasPrefix(ref, "@pkg:"):
		c.unsupported(at, p, "%s is a LinuxKit package (its build.yml), which keel cannot build: build an image of it with linuxkit pkg build and name that image, or map it to a keel package (--image-map '%s=./pkg/NAME')", ref, ref)
		return false
	case spec.IsLocalRef(ref):
		c.invalid(at, p, "%q is not an image reference", ref)
		return false
	}
	if _, err := name.ParseReference(ref); err != nil {
		c.invalid(at, p, "%q is not an image reference: %v", ref, err)
		return false
	}
	return true
}

// linuxkitSystemImages are LinuxKit's PID 1 and container runtime, which
// keel's own init replaces.
var linuxkitSystemImages = []string{"linuxkit/init", "linuxkit/runc", "linuxkit/containerd"}

// systemImage says whether ref is one of LinuxKit's linuxkitSystemImages.
func systemImage(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	repo := r.Context().RepositoryStr()
	for _, s := range linuxkitSystemImages {
		if repo == s {
			return s
		}
	}
	return ""
}

// label returns the [config] of the keel package a local reference names,
// which keel applies as the image's label; nil when the reference is no
// package directory (a registry image's label is not read when
// converting).
func (c *converter) label(ref string, at value, p string) *spec.Config {
	if !spec.IsLocalRef(ref) {
		return nil
	}
	dir := filepath.FromSlash(ref)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(c.opts.OutDir, dir)
	}
	if cfg, ok := c.labels[dir]; ok {
		return cfg
	}
	var cfg *spec.Config
	if _, err := os.Stat(filepath.Join(dir, spec.PackageFile)); err == nil {
		pkg, err := spec.LoadPackage(dir)
		if err != nil {
			c.warn(at, p, "reading the keel package %s: %v; its [config] is not taken into account", ref, firstLine(err))
		} else {
			cfg = &pkg.Config
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		c.warn(at, p, "reading the keel package %s: %v", ref, err)
	} else if _, err := os.Stat(dir); err != nil {
		c.warn(at, p, "%s does not exist (relative to the spec's directory)", ref)
	}
	c.labels[dir] = cfg
	return cfg
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
