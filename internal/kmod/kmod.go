// Package kmod selects kernel modules and orders them for loading.
//
// Debian's kernel packages ship no modules.dep (depmod runs at install
// time), so keel reads each module's .modinfo section itself and computes
// the load order at build time; init then loads the list in order.
package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Module is one loadable module of a kernel's module tree.
type Module struct {
	Name    string   // canonical name: "virtio_net" (dashes become underscores)
	Path    string   // path in the module tree, e.g. "kernel/drivers/net/virtio_net.ko"
	Depends []string // canonical names from .modinfo depends=
}

// Canonical returns the name the kernel uses for a module file or name:
// no directory, no .ko suffix, dashes as underscores.
func Canonical(name string) string {
	name = path.Base(name)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		name = strings.TrimSuffix(name, ext)
	}
	name = strings.TrimSuffix(name, ".ko")
	return strings.ReplaceAll(name, "-", "_")
}

// IsModuleFile reports whether a file name is a (possibly compressed)
// kernel module.
func IsModuleFile(name string) bool {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// Decompress returns a module's ELF bytes, decompressing .ko.xz and
// .ko.zst by name.
func Decompress(name string, r io.Reader) ([]byte, error) {
	switch {
	case strings.HasSuffix(name, ".xz"):
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return io.ReadAll(xr)
	case strings.HasSuffix(name, ".zst"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	return io.ReadAll(r)
}

// Modinfo parses the .modinfo section of a module's ELF bytes into
// key/value pairs (a key may repeat, e.g. alias).
func Modinfo(elfBytes []byte) (map[string][]string, error) {
	f, err := elf.NewFile(bytes.NewReader(elfBytes))
	if err != nil {
		return nil, fmt.Errorf("reading ELF: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	info := map[string][]string{}
	for _, field := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(field), "=")
		if !ok {
			continue
		}
		info[k] = append(info[k], v)
	}
	return info, nil
}

// Parse reads one module file (as found at modPath in the tree).
func Parse(modPath string, r io.Reader) (Module, error) {
	raw, err := Decompress(modPath, r)
	if err != nil {
		return Module{}, err
	}
	info, err := Modinfo(raw)
	if err != nil {
		return Module{}, fmt.Errorf("%s: %w", modPath, err)
	}
	m := Module{Name: Canonical(modPath), Path: modPath}
	if n := info["name"]; len(n) > 0 && n[0] != "" {
		m.Name = Canonical(n[0])
	}
	for _, d := range info["depends"] {
		for _, dep := range strings.Split(d, ",") {
			if dep = strings.TrimSpace(dep); dep != "" {
				m.Depends = append(m.Depends, Canonical(dep))
			}
		}
	}
	sort.Strings(m.Depends)
	return m, nil
}

// Set is every module of one kernel, by canonical name, and the names
// of those built into the kernel image.
type Set struct {
	Modules map[string]Module
	Builtin map[string]bool
}

// ParseBuiltin reads modules.builtin (one module path per line).
func ParseBuiltin(data []byte) map[string]bool {
	builtin := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			builtin[Canonical(line)] = true
		}
	}
	return builtin
}

// Order returns the modules needed for want, with their dependencies,
// each after everything it depends on. Names are matched canonically;
// a built-in module needs nothing. required reports names that must
// exist; optional names that this kernel lacks are skipped silently.
func (s Set) Order(required, optional []string) ([]Module, error) {
	var order []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		}
		if s.Builtin[name] {
			state[name] = 2
			return nil
		}
		m, ok := s.Modules[name]
		if !ok {
			if len(chain) == 0 {
				return fmt.Errorf("kernel module %q: not in this kernel (neither a module nor built in)", name)
			}
			return fmt.Errorf("kernel module %q (needed by %s): not in this kernel", name, strings.Join(chain, " -> "))
		}
		state[name] = 1
		for _, d := range m.Depends {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, m)
		return nil
	}
	for _, n := range required {
		if err := visit(Canonical(n), nil); err != nil {
			return nil, err
		}
	}
	for _, n := range optional {
		c := Canonical(n)
		if _, ok := s.Modules[c]; !ok {
			continue
		}
		if err := visit(c, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
