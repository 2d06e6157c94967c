package pkgbuild

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keelos/keel/internal/debian"
	"github.com/keelos/keel/internal/hostfile"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/spec"
)

// hasher frames every value with its length, so no two different input
// sequences can produce the same byte stream.
type hasher struct{ h hash.Hash }

func newHasher() *hasher { return &hasher{sha256.New()} }

func (h *hasher) str(parts ...string) {
	for _, s := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.h.Write(n[:])
		io.WriteString(h.h, s)
	}
}

// file hashes the size and content of a file the Go toolchain names.
func (h *hasher) file(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := h.sized(fi.Size(), f); err != nil {
		return fmt.Errorf("hashing %s: %w", p, err)
	}
	return nil
}

// hostFile hashes the size and content of name inside dir, a file of the
// package, read as hostfile allows.
func (h *hasher) hostFile(ctx context.Context, dir, name string) error {
	f, err := hostfile.Open(ctx, dir, name)
	if err != nil {
		return err
	}
	defer f.Close()
	return h.sized(f.Size(), f)
}

// sized hashes a size and the content read from r.
func (h *hasher) sized(size int64, r io.Reader) error {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(size))
	h.h.Write(n[:])
	_, err := io.Copy(h.h, r)
	return err
}

func (h *hasher) sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// hashDir hashes every entry under dir in lexical order: its relative
// path, mode, and content (regular files) or target (symlinks). The
// directory is what a [build] copies from, so it may hold only regular
// files, directories and symlinks that stay inside it (hostfile's rules).
func hashDir(ctx context.Context, h *hasher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// A directory's permissions never reach the image (and vary with
		// the umask of whoever checked the package out): only its type is
		// an input.
		mode := info.Mode().String()
		if d.IsDir() {
			mode = "d"
		}
		switch {
		case d.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			if err := hostfile.Inside(dir, rel); err != nil {
				return err
			}
		case !info.Mode().IsRegular():
			// Refused, with what it is.
			f, err := hostfile.Open(ctx, dir, rel)
			if err == nil {
				f.Close()
				err = fmt.Errorf("%s: not a regular file", rel)
			}
			return err
		}
		h.str("entry", filepath.ToSlash(rel), mode)
		switch {
		case info.Mode().IsRegular():
			return h.hostFile(ctx, dir, rel)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.str(target)
		}
		return nil
	})
}

// goPackage is the part of `go list -json` output the key needs.
type goPackage struct {
	Dir        string
	ImportPath string
	Standard   bool
	Module     *struct {
		Path    string
		Version string
		Main    bool
		GoMod   string
	}
	GoFiles, CgoFiles, SFiles, HFiles, CFiles, SysoFiles, EmbedFiles []string
}

// goEnv is the environment of every go command: a static, reproducible
// cross-build that ignores the host's GOFLAGS and micro-architecture
// settings.
func goEnv(arch string) []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch,
		"GOFLAGS=", "GOAMD64=v1", "GOARM64=v8.0")
}

// hashGo hashes what decides a [[go]] program's binary: the toolchain
// version, the entry itself, and the content of every file of every
// non-standard package in its dependency graph, plus go.mod and go.sum.
func (b *Builder) hashGo(ctx context.Context, h *hasher, dir, arch string, g spec.GoBin) error {
	ver, err := b.goVersion(ctx)
	if err != nil {
		return err
	}
	h.str("go", ver, g.Main, g.Dest, g.Ldflags, strings.Join(g.Tags, ","))
	args := []string{"list", "-deps", "-json"}
	if len(g.Tags) > 0 {
		args = append(args, "-tags", strings.Join(g.Tags, ","))
	}
	args = append(args, g.Main)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv(arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list %s: %w: %s", g.Main, err, strings.TrimSpace(stderr.String()))
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	gomods := map[string]bool{}
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			return fmt.Errorf("go list %s: %w", g.Main, err)
		}
		if p.Standard {
			continue
		}
		h.str("pkg", p.ImportPath)
		if p.Module != nil {
			h.str(p.Module.Path, p.Module.Version)
			if p.Module.GoMod != "" {
				gomods[p.Module.GoMod] = p.Module.Main
			}
		}
		var files []string
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.HFiles, p.CFiles, p.SysoFiles, p.EmbedFiles} {
			files = append(files, list...)
		}
		slices.Sort(files)
		for _, f := range files {
			h.str(f)
			if err := h.file(filepath.Join(p.Dir, f)); err != nil {
				return err
			}
		}
	}
	mods := make([]string, 0, len(gomods))
	for m := range gomods {
		mods = append(mods, m)
	}
	slices.Sort(mods)
	for _, m := range mods {
		if !gomods[m] {
			continue
		}
		// The main module's go.mod and go.sum pin every dependency.
		for _, f := range []string{m, filepath.Join(filepath.Dir(m), "go.sum")} {
			if _, err := os.Stat(f); err != nil {
				continue
			}
			h.str(f)
			if err := h.file(f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Builder) goVersion(ctx context.Context) (string, error) {
	b.goOnce.Do(func() {
		out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
		if err != nil {
			b.goErr = fmt.Errorf("go env GOVERSION: %w", err)
			return
		}
		b.goVer = strings.TrimSpace(string(out))
	})
	return b.goVer, b.goErr
}

// debianArch maps a GOARCH to Debian's architecture name.
func debianArch(arch string) string {
	switch arch {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	}
	return arch
}

// resolveDebian resolves the [debian] section for arch, with "{arch}"
// expanded in package names, or takes what b.Locked pins it to.
func (b *Builder) resolveDebian(ctx context.Context, d *spec.Debian, arch string) ([]debian.Package, error) {
	darch := debianArch(arch)
	expand := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = strings.ReplaceAll(n, "{arch}", darch)
		}
		return out
	}
	req := lock.DebianSet{Suite: d.Suite, Arch: darch, Components: d.Components, Packages: expand(d.Packages), Exclude: expand(d.Exclude)}
	if req.Suite == "" {
		req.Suite = "bookworm"
	}
	var pkgs []debian.Package
	if b.Locked != nil {
		set, ok := b.Locked.DebianPins(req)
		if !ok {
			return nil, fmt.Errorf("%s is not in build.lock (the section changed since the lock was written): run keel lock", req)
		}
		pkgs = pinnedPackages(set)
	} else {
		if b.Debian == nil {
			return nil, fmt.Errorf("[debian] needs a Debian mirror: none found in the apt configuration; set %s", debian.MirrorEnv)
		}
		resolved, err := b.Debian.ResolveIn(ctx, req.Suite, darch, d.Components, req.Packages, req.Exclude)
		if err != nil {
			return nil, fmt.Errorf("resolving Debian packages: %w", err)
		}
		pkgs = slices.Clone(resolved)
	}
	slices.SortFunc(pkgs, func(a, b debian.Package) int { return strings.Compare(a.Name, b.Name) })
	req.Debs = pinnedDebs(pkgs)
	req.Sort()
	b.mu.Lock()
	b.debianSets = append(b.debianSets, req)
	b.mu.Unlock()
	return pkgs, nil
}

// pinnedDebs is what a lock file records of resolved packages.
func pinnedDebs(pkgs []debian.Package) []lock.PinnedDeb {
	out := make([]lock.PinnedDeb, len(pkgs))
	for i, p := range pkgs {
		out[i] = lock.PinnedDeb{Name: p.Name, Version: p.Version, Arch: p.Arch, Filename: p.Filename, Size: p.Size, SHA256: p.SHA256}
		if p.Source != p.Name {
			out[i].Source = p.Source
		}
		if p.SourceVersion != p.Version {
			out[i].SourceVersion = p.SourceVersion
		}
	}
	return out
}

// pinnedPackages turns a lock file's pins back into packages, as the
// index gave them (less the relations, which nothing reads after
// resolving).
func pinnedPackages(set lock.DebianSet) []debian.Package {
	out := make([]debian.Package, len(set.Debs))
	for i, d := range set.Debs {
		out[i] = debian.Package{Name: d.Name, Version: d.Version, Arch: d.Arch, Source: cmp.Or(d.Source, d.Name),
			SourceVersion: cmp.Or(d.SourceVersion, d.Version), Filename: d.Filename, SHA256: d.SHA256, Size: d.Size}
	}
	return out
}
