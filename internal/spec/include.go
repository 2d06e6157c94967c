package spec

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// included is all a file named by a package's include may hold.
type included struct {
	Files []File `toml:"file"`
}

// checkIncludes validates a package's include list: relative paths of
// .toml files, each named once.
func (l *located) checkIncludes(p keyPath, includes []string) {
	for i, inc := range includes {
		ip := p.elem(i)
		switch {
		case inc == "":
			l.errorf(ip, "empty path")
		case filepath.IsAbs(inc) || strings.HasPrefix(inc, "/"):
			l.errorf(ip, "%q: an include is relative to the package directory", inc)
		case !strings.HasSuffix(inc, ".toml"):
			l.errorf(ip, "%q: an include is a .toml file of [[file]] entries", inc)
		case slices.Contains(includes[:i], inc):
			l.errorf(ip, "%q is included twice", inc)
		}
	}
}

// includeFiles appends to pk.Files the [[file]] entries of the files
// pk.Include names, in order, each entry's source relative to its own
// file. file is the package.toml, for errors. A path named twice, in the
// package or in its includes, is refused.
func includeFiles(pk *Package, file string) error {
	var errs Errors
	seen := map[string]string{}
	for _, f := range pk.Files {
		seen[f.Path] = file
	}
	for _, inc := range pk.Include {
		name := filepath.Join(pk.Dir, inc)
		data, _, rerr := readFile(name)
		if rerr != nil {
			errs = append(errs, &Error{File: file, Path: "include", Msg: fmt.Sprintf("%s: %s", inc, rerr.Msg)})
			continue
		}
		tree, perr := parseTree(name, data)
		if perr != nil {
			errs = append(errs, perr)
			continue
		}
		l := newLocated(name)
		var in included
		l.decode(tree, reflect.ValueOf(&in).Elem(), keyPath{})
		fp := keyPath{}.field("file")
		l.checkFiles(fp, in.Files)
		for i := range in.Files {
			f := &in.Files[i]
			if prev, dup := seen[f.Path]; dup && prev != name {
				l.errorf(fp.entry(i, f.Path).field("path"), "duplicate file %q (also in %s)", f.Path, prev)
			}
			seen[f.Path] = name
			f.Dir = filepath.Dir(name)
			f.Origin = name
		}
		if len(l.errs) > 0 {
			sortErrors(l.errs, []string{name})
			errs = append(errs, l.errs...)
			continue
		}
		pk.Files = append(pk.Files, in.Files...)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
