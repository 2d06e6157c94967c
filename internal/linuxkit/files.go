package linuxkit

import (
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/keelos/keel/internal/spec"
)

// volumeDir holds LinuxKit's volumes in keel's image: a directory each,
// writable and, like the whole root, in memory.
const volumeDir = "/var/lib/volumes"

// maxInline bounds a file outside the spec's directory that the converter
// copies into the spec.
const maxInline = 1 << 20

// volume is a LinuxKit volume: a directory containers bind by its name.
type volume struct {
	path     string
	readonly bool
}

// convertVolumes registers the volumes binds may name and returns their
// directories.
func (c *converter) convertVolumes(items []value) []placed {
	var out []placed
	for i, it := range items {
		p := index("volumes", i)
		fs, ok := c.fields(it, p)
		if !ok {
			continue
		}
		var name string
		var ro, bad bool
		var image, other *field
		for _, f := range fs {
			fp := join(p, f.key)
			switch f.key {
			case "name":
				name, _ = c.str(f.val, fp)
			case "image":
				if s, ok := c.str(f.val, fp); ok && s != "" {
					image = &f
				}
			case "readonly":
				var ok bool
				ro, ok = c.boolean(f.val, fp)
				bad = bad || !ok
			case "format", "platforms":
				if !f.val.isNull() {
					other = &f
				}
			default:
				c.invalid(f.keyAt, fp, "unknown key of a volume (LinuxKit's are name, image, readonly, format, platforms)")
				bad = true
			}
		}
		if name == "" {
			c.invalid(it, join(p, "name"), "required")
			continue
		}
		p = named("volumes", name)
		if _, dup := c.volumes[name]; dup {
			c.invalid(it, p, "a second volume named %q", name)
			continue
		}
		if bad {
			continue
		}
		if strings.Contains(name, "/") || name == "." || name == ".." {
			c.unsupported(it, p, "%q cannot name a directory", name)
			continue
		}
		switch {
		case image != nil:
			c.unsupported(image.val, join(p, "image"), "keel cannot fill a directory with an image's files: make the volume a keel package whose files sit under %s/%s and list it in init, or bind a directory an onboot container fills", volumeDir, name)
		case other != nil:
			c.warn(other.val, join(p, other.key), "no effect without an image")
		}
		v := &volume{path: volumeDir + "/" + name, readonly: ro}
		c.volumes[name] = v
		out = append(out, placed{spec.File{Path: v.path, Directory: true, Mode: spec.MustParse[spec.FileMode]("0755")}, it, p})
	}
	return out
}

// placed is a file entry and where the YAML wrote it.
type placed struct {
	f    spec.File
	at   value
	path string
}

// convertFiles translates the files section, after the volumes'
// directories. A path given twice keeps the later entry, which LinuxKit
// writes over the earlier one.
func (c *converter) convertFiles(volumes []placed, items []value) []spec.File {
	all := volumes
	for i, it := range items {
		if pl, ok := c.file(it, index("files", i)); ok {
			all = append(all, pl)
		}
	}
	last := map[string]int{}
	for i, pl := range all {
		last[pl.f.Path] = i
	}
	var out []spec.File
	for i, pl := range all {
		if j := last[pl.f.Path]; j != i {
			later := all[j]
			c.warn(later.at, later.path, "replaces the entry for %s at %s:%d, as LinuxKit writes the later one over it", pl.f.Path, pl.at.file, pl.at.n.Line)
			continue
		}
		out = append(out, pl.f)
	}
	return out
}

// file translates one files entry.
func (c *converter) file(it value, p string) (placed, bool) {
	fs, ok := c.fields(it, p)
	if !ok {
		return placed{}, false
	}
	var (
		filePath, symlink, source, metadata string
		mode                                spec.FileMode
		contents                            *string
		directory, optional, bad            bool
		uid, gid                            uint32
		at                                  = map[string]field{}
	)
	for _, f := range fs {
		fp := join(p, f.key)
		at[f.key] = f
		ok := true
		switch f.key {
		case "path":
			filePath, ok = c.str(f.val, fp)
			if ok && filePath != "" {
				p = named("files", filePath)
			}
		case "symlink":
			symlink, ok = c.str(f.val, fp)
		case "source":
			source, ok = c.str(f.val, fp)
		case "metadata":
			metadata, ok = c.str(f.val, fp)
		case "contents":
			var s string
			if s, ok = c.str(f.val, fp); ok {
				contents = &s
			}
		case "mode":
			mode, ok = c.mode(f.val, fp)
		case "directory":
			directory, ok = c.boolean(f.val, fp)
		case "optional":
			optional, ok = c.boolean(f.val, fp)
		case "uid":
			uid, ok = c.id(f.val, fp)
		case "gid":
			gid, ok = c.id(f.val, fp)
		default:
			c.invalid(f.keyAt, fp, "unknown key of a file (LinuxKit's are path, directory, symlink, contents, source, metadata, optional, mode, uid, gid)")
			ok = false
		}
		bad = bad || !ok
	}
	if filePath == "" {
		c.invalid(it, join(p, "path"), "required")
		return placed{}, false
	}
	if bad {
		return placed{}, false
	}
	// LinuxKit's rules for what a file is.
	regular := !directory && symlink == "" && contents == nil
	switch {
	case directory && contents != nil:
		c.invalid(at["contents"].keyAt, p, "a directory with contents")
		return placed{}, false
	case regular && source == "" && metadata == "":
		c.invalid(it, p, "no contents: set contents, source, metadata, symlink or directory")
		return placed{}, false
	case regular && source != "" && metadata != "":
		c.invalid(at["metadata"].keyAt, p, "both source and metadata")
		return placed{}, false
	case !regular && metadata != "":
		c.invalid(at["metadata"].keyAt, p, "metadata with contents, symlink or directory")
		return placed{}, false
	case !regular && source != "":
		c.invalid(at["source"].keyAt, p, "source with contents, symlink or directory")
		return placed{}, false
	}

	kp := "/" + strings.TrimPrefix(filePath, "/")
	if len(kp) > 1 {
		kp = strings.TrimSuffix(kp, "/")
	}
	if clean := path.Clean(kp); clean != kp || strings.Contains(kp, "/../") {
		c.unsupported(at["path"].val, p, "keel takes clean paths only: write %s", clean)
		return placed{}, false
	}
	f := spec.File{Path: kp, UID: uid, GID: gid}
	ignored := func(key, why string) {
		if x, ok := at[key]; ok {
			c.warn(x.keyAt, join(p, key), "ignored, as LinuxKit ignores it: %s", why)
		}
	}
	switch {
	case directory:
		f.Directory = true
		f.Mode = modeOr(mode, "0700")
		ignored("symlink", "the entry is a directory")
	case symlink != "":
		f.Symlink = symlink
		ignored("contents", "the entry is a symlink")
		ignored("mode", "a symlink has no mode")
	case contents != nil:
		f.Contents = contents
		f.Mode = modeOr(mode, "0600")
	case source != "":
		f.Mode = modeOr(mode, "0600")
		if !c.source(&f, source, optional, at["source"].val, join(p, "source")) {
			return placed{}, false
		}
	default:
		if metadata != "yaml" && metadata != "json" {
			c.invalid(at["metadata"].val, join(p, "metadata"), "unsupported metadata type %q (LinuxKit's are yaml and json)", metadata)
			return placed{}, false
		}
		// keel writes the resolved spec of every image there.
		f.Symlink = "/etc/keel/build.toml"
		c.warn(at["metadata"].val, join(p, "metadata"), "keel writes every image's resolved spec to /etc/keel/build.toml, in TOML: %s becomes a symlink to it, not LinuxKit's %s", kp, strings.ToUpper(metadata))
		ignored("mode", "the entry becomes a symlink")
	}
	if _, ok := at["optional"]; ok && source == "" {
		ignored("optional", "it applies to a source")
	}
	if msg := checkFile(f); msg != "" {
		c.unsupported(it, p, "%s", msg)
		return placed{}, false
	}
	if kp == "/run" || kp == "/tmp" || strings.HasPrefix(kp, "/run/") || strings.HasPrefix(kp, "/tmp/") {
		c.warn(at["path"].val, join(p, "path"), "hidden at run time by the tmpfs keel (like LinuxKit) mounts on %s", kp[:4])
	}
	return placed{f, it, p}, true
}

// modeOr is mode, or def when the entry gives none.
func modeOr(mode spec.FileMode, def string) spec.FileMode {
	if mode.IsSet() {
		return mode
	}
	return spec.MustParse[spec.FileMode](def)
}

// mode reads an octal mode, written as a string ("0644") or, unquoted, as
// digits LinuxKit's parser would also take as octal, and writes it as
// keel does (four digits at least).
func (c *converter) mode(v value, p string) (spec.FileMode, bool) {
	s, ok := c.str(v, p)
	if !ok {
		return spec.FileMode{}, false
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		c.invalid(v, p, "%q is not an octal mode", s)
		return spec.FileMode{}, false
	}
	var m spec.FileMode
	if err := m.UnmarshalText(fmt.Appendf(nil, "%04o", n)); err != nil {
		c.unsupported(v, p, "%v", err)
		return spec.FileMode{}, false
	}
	return m, true
}

// id reads a uid or gid: a number, or the name of a container, which
// stands for the id LinuxKit gives that container ("root" and "" are 0).
func (c *converter) id(v value, p string) (uint32, bool) {
	if isInteger(v) {
		n, _ := c.integer(v, p)
		if n < 0 || n > math.MaxUint32 {
			c.invalid(v, p, "%d is not a uid or gid", n)
			return 0, false
		}
		return uint32(n), true
	}
	s, ok := c.str(v, p)
	if !ok {
		return 0, false
	}
	if s == "" || s == "root" {
		return 0, true
	}
	if id, ok := c.ids[s]; ok {
		return id, true
	}
	c.invalid(v, p, "%q is neither a number nor the name of a container (LinuxKit numbers the containers from 100: onboot, onshutdown, then services)", s)
	return 0, false
}

// source translates a host file. keel reads a file's source only inside
// the spec's directory; one elsewhere is copied into the spec when it is
// text.
func (c *converter) source(f *spec.File, src string, optional bool, at value, p string) bool {
	host := src
	if strings.HasPrefix(src, "~/") && len(src) > 2 {
		if c.opts.HomeDir == "" {
			c.unsupported(at, p, "%s: no home directory is known", src)
			return false
		}
		host = filepath.Join(c.opts.HomeDir, src[2:])
	}
	if !filepath.IsAbs(host) {
		host = filepath.Join(c.opts.WorkDir, host)
	}
	fi, err := os.Stat(host)
	if err != nil {
		if optional {
			c.warn(at, p, "left out: %s cannot be read and the file is optional", src)
			return false
		}
		c.unsupported(at, p, "%s cannot be read: %v", src, unwrapPath(err))
		return false
	}
	if !fi.Mode().IsRegular() {
		c.unsupported(at, p, "%s is not a regular file", src)
		return false
	}
	if rel, ok := inside(c.opts.OutDir, host); ok {
		f.Source = filepath.ToSlash(rel)
		return true
	}
	fail := func(why string) bool {
		c.unsupported(at, p, "%s is outside the spec's directory, where keel reads file sources, and %s to copy into the spec: copy it into that directory and name it relative to the spec", src, why)
		return false
	}
	if fi.Size() > maxInline {
		return fail(fmt.Sprintf("is too large (over %d bytes)", maxInline))
	}
	r, err := os.Open(host)
	if err != nil {
		c.unsupported(at, p, "%s cannot be read: %v", src, unwrapPath(err))
		return false
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxInline+1))
	switch {
	case err != nil:
		c.unsupported(at, p, "%s cannot be read: %v", src, unwrapPath(err))
		return false
	case len(data) > maxInline:
		return fail(fmt.Sprintf("is too large (over %d bytes)", maxInline))
	case !utf8.Valid(data):
		return fail("is not text")
	}
	s := string(data)
	f.Contents = &s
	c.warn(at, p, "%s is outside the spec's directory, where keel reads file sources: its contents are copied into the spec", src)
	return true
}

// inside returns name relative to dir when it is in dir, links resolved.
func inside(dir, name string) (string, bool) {
	if dir == "" {
		return "", false
	}
	rd, err1 := filepath.EvalSymlinks(dir)
	rn, err2 := filepath.EvalSymlinks(name)
	if err1 != nil || err2 != nil {
		return "", false
	}
	if rel, err := filepath.Rel(rd, rn); err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	rel, err := filepath.Rel(dir, name)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// unwrapPath drops the path an os error repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
