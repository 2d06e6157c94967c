package spec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
)

// Defaults applied by Load when no file sets them.
const (
	DefaultName     = "keel"
	DefaultRoot     = "initrd"
	DefaultFormat   = "kernel+initrd"
	DefaultSuite    = "bookworm"
	PackageFile     = "package.toml"
	DefaultSpecFile = "build.toml"
)

// MaxFileSize bounds a spec or package file. Real ones are a few KiB; the
// bound keeps a mistaken or hostile argument (a disk image, /dev/zero)
// from being read whole or parsed.
const MaxFileSize = 4 << 20

// parsed is one validated file and where its values were written.
type parsed struct {
	spec *Spec
	loc  *located
}

// Parse parses and validates one spec document without merging or
// applying defaults. file names the document in errors; local image
// references and file sources are relative to its directory. A problem in
// the document is returned as Errors.
func Parse(file string, data []byte) (*Spec, error) {
	p, errs := parse(file, data)
	if len(errs) > 0 {
		sortErrors(errs, []string{file})
		return nil, errs
	}
	return p.spec, nil
}

// parse decodes and checks one document. It returns what it could decode
// even when there are errors, so that Load can still find duplicates
// across files; p is nil only when the document is not valid TOML.
func parse(file string, data []byte) (p *parsed, errs Errors) {
	if len(data) > MaxFileSize {
		return nil, Errors{tooLarge(file)}
	}
	tree, perr := parseTree(file, data)
	if perr != nil {
		return nil, Errors{perr}
	}
	l := newLocated(file)
	var s Spec
	l.decode(tree, reflect.ValueOf(&s).Elem(), keyPath{})
	l.checkSpec(&s)
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		l.errs = append(l.errs, &Error{File: file, Msg: fmt.Sprintf("directory: %v", err)})
	}
	setSpecDirs(&s, dir)
	for i := range s.Files {
		s.Files[i].Origin = file
	}
	return &parsed{spec: &s, loc: l}, l.errs
}

func setSpecDirs(s *Spec, dir string) {
	for i := range s.Init {
		s.Init[i].Dir = dir
	}
	if s.Kernel.Image.Ref != "" {
		s.Kernel.Image.Dir = dir
	}
	for _, cs := range [][]Container{s.Onboot, s.Services, s.Onshutdown} {
		for i := range cs {
			cs[i].Image.Dir = dir
		}
	}
	for i := range s.Files {
		s.Files[i].Dir = dir
	}
}

// Load reads the spec files, validates each, merges them in order and
// applies defaults. Later files' scalars win and their lists append;
// containers, volumes and files are keyed by name (path) and may not be
// repeated across files. Every problem of every file is returned
// together as Errors.
func Load(files ...string) (*Spec, error) {
	if len(files) == 0 {
		files = []string{DefaultSpecFile}
	}
	var all Errors
	var docs []*parsed
	read := make([]os.FileInfo, len(files))
	for i, f := range files {
		data, info, err := readFile(f)
		if err != nil {
			all = append(all, err)
			continue
		}
		// A file named twice (by the same path, another path or a link)
		// would be merged with itself: every container in it twice.
		if j := slices.IndexFunc(read[:i], func(prev os.FileInfo) bool { return prev != nil && os.SameFile(prev, info) }); j >= 0 {
			all = append(all, &Error{File: f, Msg: fmt.Sprintf("the same file as spec argument %d (%s); give each spec file once", j+1, files[j])})
			continue
		}
		read[i] = info
		p, errs := parse(f, data)
		all = append(all, errs...)
		if p != nil {
			docs = append(docs, p)
		}
	}
	s := merge(docs, &all)
	if len(docs) == len(files) && s.Kernel.Image.Ref == "" {
		all = append(all, &Error{File: files[len(files)-1], Path: "kernel.image", Msg: "required: no file sets [kernel] image"})
	}
	if len(all) > 0 {
		sortErrors(all, files)
		return nil, all
	}
	applyDefaults(s)
	return s, nil
}

// readFile reads a spec or package file of at most MaxFileSize bytes.
func readFile(name string) ([]byte, os.FileInfo, *Error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, &Error{File: name, Msg: fmt.Sprintf("cannot read: %v", unwrapPath(err))}
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, &Error{File: name, Msg: fmt.Sprintf("cannot read: %v", unwrapPath(err))}
	}
	if info.Mode().IsRegular() && info.Size() > MaxFileSize {
		return nil, nil, tooLarge(name)
	}
	// Not every file has a size (a pipe): the read itself is bounded.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, &Error{File: name, Msg: fmt.Sprintf("cannot read: %v", unwrapPath(err))}
	}
	if len(data) > MaxFileSize {
		return nil, nil, tooLarge(name)
	}
	return data, info, nil
}

func tooLarge(file string) *Error {
	return &Error{File: file, Msg: fmt.Sprintf("larger than %d MiB: not a spec or package file", MaxFileSize>>20)}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// merge folds the files in order into one spec, reporting names defined
// in two files.
func merge(docs []*parsed, errs *Errors) *Spec {
	out := &Spec{}
	type origin struct {
		doc *parsed
		at  pos
	}
	seen := map[string]origin{} // "service/sshd", "volume/data", "file//etc/motd"
	claim := func(d *parsed, kind, name string, p keyPath) {
		at := d.loc.lookup(p)
		k := kind + "/" + name
		if prev, dup := seen[k]; dup {
			if prev.doc == d {
				return // reported by the file's own check
			}
			*errs = append(*errs, &Error{File: d.loc.file, Line: at.line, Col: at.col, Path: p.disp,
				Msg: fmt.Sprintf("duplicate %s %q, already defined at %s:%d:%d", kind, name, prev.doc.loc.file, prev.at.line, prev.at.col)})
			return
		}
		seen[k] = origin{d, at}
	}
	for _, d := range docs {
		s, root := d.spec, keyPath{}
		if d.loc.has(root.field("name")) {
			out.Name = s.Name
		}
		out.Arch = appendNew(out.Arch, s.Arch...)
		out.Init = append(out.Init, s.Init...)
		kp := root.field("kernel")
		if d.loc.has(kp.field("image")) {
			out.Kernel.Image = s.Kernel.Image
		}
		if d.loc.has(kp.field("cmdline")) {
			out.Kernel.Cmdline = s.Kernel.Cmdline
		}
		out.Kernel.Modules = appendNew(out.Kernel.Modules, s.Kernel.Modules...)
		for _, list := range []struct {
			key string
			in  []Container
			out *[]Container
		}{{"onboot", s.Onboot, &out.Onboot}, {"service", s.Services, &out.Services}, {"onshutdown", s.Onshutdown, &out.Onshutdown}} {
			for i, c := range list.in {
				claim(d, list.key, c.Name, root.field(list.key).entry(i, c.Name).field("name"))
			}
			*list.out = append(*list.out, list.in...)
		}
		for i, f := range s.Files {
			claim(d, "file", f.Path, root.field("file").entry(i, f.Path).field("path"))
		}
		out.Files = append(out.Files, s.Files...)
		for i, v := range s.Volumes {
			claim(d, "volume", v.Name, root.field("volume").entry(i, v.Name).field("name"))
		}
		out.Volumes = append(out.Volumes, s.Volumes...)
		op := root.field("output")
		out.Output.Formats = appendNew(out.Output.Formats, s.Output.Formats...)
		if d.loc.has(op.field("size")) {
			out.Output.Size = s.Output.Size
		}
		if d.loc.has(op.field("root")) {
			out.Output.Root = s.Output.Root
		}
		if d.loc.has(op.field("memory")) {
			out.Output.Memory = s.Output.Memory
		}
		if d.loc.has(op.field("initrd-max-percent")) {
			out.Output.InitrdMaxPercent = s.Output.InitrdMaxPercent
		}
	}
	return out
}

// appendNew appends the values not already in list: an architecture or a
// format named twice is built once.
func appendNew(list []string, vs ...string) []string {
	for _, v := range vs {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

func applyDefaults(s *Spec) {
	if s.Name == "" {
		s.Name = DefaultName
	}
	if len(s.Arch) == 0 {
		s.Arch = []string{runtime.GOARCH}
	}
	if s.Output.Root == "" {
		s.Output.Root = DefaultRoot
	}
	if len(s.Output.Formats) == 0 {
		s.Output.Formats = []string{DefaultFormat}
	}
}

// LoadPackage reads and validates DIR/package.toml. Dir and every
// File.Dir are set to the absolute package directory; debian.suite
// defaults to bookworm.
func LoadPackage(dir string) (*Package, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", dir, err)
	}
	file := filepath.Join(dir, PackageFile)
	data, _, rerr := readFile(file)
	if rerr != nil {
		return nil, Errors{rerr}
	}
	pk, err := ParsePackage(file, data)
	if err != nil {
		return nil, err
	}
	pk.Dir = abs
	for i := range pk.Files {
		pk.Files[i].Dir = abs
		pk.Files[i].Origin = file
	}
	if err := includeFiles(pk, file); err != nil {
		return nil, err
	}
	return pk, nil
}

// ParsePackage parses and validates one package.toml document; file names
// it in errors. Dir is left empty.
func ParsePackage(file string, data []byte) (*Package, error) {
	if len(data) > MaxFileSize {
		return nil, Errors{tooLarge(file)}
	}
	tree, perr := parseTree(file, data)
	if perr != nil {
		return nil, Errors{perr}
	}
	l := newLocated(file)
	var pk Package
	l.decode(tree, reflect.ValueOf(&pk).Elem(), keyPath{})
	l.checkPackage(&pk)
	if len(l.errs) > 0 {
		sortErrors(l.errs, []string{file})
		return nil, l.errs
	}
	if pk.Debian != nil && pk.Debian.Suite == "" {
		pk.Debian.Suite = DefaultSuite
	}
	return &pk, nil
}
