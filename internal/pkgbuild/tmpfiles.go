package pkgbuild

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/keelos/keel/internal/fstree"
)

// tmpfilesItem is one line of a tmpfiles.d file.
type tmpfilesItem struct {
	at                confLine
	typ               byte
	plus, minus, eq   bool // the "+", "-" and "=" modifiers
	path              string
	mode              fs.FileMode
	modeSet, modeMask bool // "~MODE": masked by the existing mode
	modeOnCreate      bool // ":MODE": only when created
	user, group       string
	userOnCreate      bool
	groupOnCreate     bool
	arg               string
	argSet            bool
}

// glob reports whether the path is a pattern (the line types that take
// one: e, z, Z).
func (it *tmpfilesItem) glob() bool {
	return strings.ContainsAny(it.path, "*?[") && strings.IndexByte("ezZ", it.typ) >= 0
}

// creates reports whether the line makes a file system object (as
// opposed to adjusting an existing one).
func (it *tmpfilesItem) creates() bool { return strings.IndexByte("fdDvqQpLC", it.typ) >= 0 }

// runtimeRoots are kernel file systems mounted at run time: nothing keel
// writes there at build time would be seen.
var runtimeRoots = []string{"/dev", "/proc", "/sys"}

// parseTmpfiles parses one tmpfiles.d file: a malformed line is an
// error, a line keel does not apply at build time comes back in skipped.
func parseTmpfiles(f confFile, arch string) (out []*tmpfilesItem, skipped []error, err error) {
	for _, cl := range confLines(f) {
		it, err := parseTmpfilesLine(cl, arch)
		switch {
		case errors.Is(err, errSkip):
			skipped = append(skipped, fmt.Errorf("%s: %s: %w", cl, firstWords(cl.text, 2), err))
		case err != nil:
			return nil, nil, fmt.Errorf("%s: %w", cl, err)
		default:
			out = append(out, it)
		}
	}
	return out, skipped, nil
}

func firstWords(s string, n int) string {
	return strings.Join(strings.Fields(s)[:min(n, len(strings.Fields(s)))], " ")
}

func parseTmpfilesLine(cl confLine, arch string) (*tmpfilesItem, error) {
	f, tail, err := splitFields(cl.text, 6, true)
	if err != nil {
		return nil, err
	}
	if len(f) < 2 {
		return nil, fmt.Errorf("want TYPE PATH [MODE [USER [GROUP [AGE [ARGUMENT]]]]]")
	}
	for len(f) < 6 {
		f = append(f, "-")
	}
	it := &tmpfilesItem{at: cl}
	t := f[0]
	if t == "" || !isLetter(t[0]) {
		return nil, fmt.Errorf("%q is not a line type", t)
	}
	it.typ = t[0]
	tilde, caret := false, false
	for _, m := range t[1:] {
		switch m {
		case '+':
			it.plus = true
		case '-':
			it.minus = true
		case '=':
			it.eq = true
		case '!': // boot only: every boot of a keel machine starts from the image
		case '~':
			tilde = true
		case '^':
			caret = true
		default:
			return nil, fmt.Errorf("unknown modifier %q in line type %q", m, t)
		}
	}
	if it.typ == 'F' {
		it.typ, it.plus = 'f', true
	}
	if it.typ == 'm' { // the old name of z
		it.typ = 'z'
	}
	if it.path, err = expandSpecifiers(f[1], arch); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(it.path, "/") {
		return nil, fmt.Errorf("%q is not an absolute path", it.path)
	}
	it.path = path.Clean(it.path)
	switch it.typ {
	case 'f', 'd', 'D', 'v', 'q', 'Q', 'p', 'L', 'C', 'e', 'z', 'Z':
	case 'w':
		return nil, skipf("w writes into a file of the running machine")
	case 'c', 'b':
		return nil, skipf("device nodes come from the container's devices")
	case 'x', 'X', 'r', 'R':
		return nil, skipf("keel removes and cleans nothing: each boot starts from the image")
	case 't', 'T', 'h', 'H', 'a', 'A':
		return nil, skipf("extended attributes, file attributes and ACLs are not set at build time")
	default:
		return nil, fmt.Errorf("unknown line type %q", t)
	}
	for _, r := range runtimeRoots {
		if it.path == r || strings.HasPrefix(it.path, r+"/") {
			return nil, skipf("%s is a kernel file system mounted at run time", r)
		}
	}
	if caret {
		return nil, skipf("^: the contents come from a credential of the running machine")
	}
	if err := it.parseMode(f[2]); err != nil {
		return nil, err
	}
	it.user, it.userOnCreate = onCreate(f[3])
	it.group, it.groupOnCreate = onCreate(f[4])
	if tail != "" && tail != "-" {
		it.argSet = true
		if tilde {
			b, err := base64.StdEncoding.DecodeString(tail)
			if err != nil {
				return nil, fmt.Errorf("~: the argument is not base64: %w", err)
			}
			it.arg = string(b)
		} else if it.arg, err = unescapeAll(tail); err != nil {
			return nil, err
		} else if it.arg, err = expandSpecifiers(it.arg, arch); err != nil {
			return nil, err
		}
	}
	return it, nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// onCreate splits a user or group field: "-" is unset, a ":" prefix
// applies it only to what the line creates.
func onCreate(s string) (string, bool) {
	if s == "-" || s == "" {
		return "", false
	}
	if v, ok := strings.CutPrefix(s, ":"); ok {
		return v, true
	}
	return s, false
}

func (it *tmpfilesItem) parseMode(s string) error {
	if s == "-" || s == "" {
		return nil
	}
	for len(s) > 0 && (s[0] == '~' || s[0] == ':') {
		if s[0] == '~' {
			it.modeMask = true
		} else {
			it.modeOnCreate = true
		}
		s = s[1:]
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return fmt.Errorf("%q is not an octal mode", s)
	}
	it.mode, it.modeSet = fstree.PermMode(uint32(n)), true
	return nil
}

// attrs are the mode and owner the line gives an object: cur is the
// existing one, nil for one it creates with the mode def.
func (it *tmpfilesItem) attrs(db *accountDB, cur *fstree.Entry, def fs.FileMode) (mode fs.FileMode, uid, gid int, err error) {
	mode = def
	if cur != nil {
		mode, uid, gid = cur.Mode&permBits, cur.UID, cur.GID
	}
	if it.modeSet && (cur == nil || !it.modeOnCreate) {
		mode = it.mode
		if it.modeMask && cur != nil {
			mode = maskMode(mode, cur)
		}
	}
	if it.user != "" && (cur == nil || !it.userOnCreate) {
		id, err := db.lookupUser(it.user)
		if err != nil {
			return 0, 0, 0, err
		}
		uid = int(id)
	}
	if it.group != "" && (cur == nil || !it.groupOnCreate) {
		id, err := db.lookupGroup(it.group)
		if err != nil {
			return 0, 0, 0, err
		}
		gid = int(id)
	}
	return mode, uid, gid, nil
}

const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// maskMode is tmpfiles.d's "~": the permission classes (read, write,
// execute) the existing object grants nobody stay off, and the special
// bits stay only on directories.
func maskMode(m fs.FileMode, cur *fstree.Entry) fs.FileMode {
	for _, bits := range []fs.FileMode{0o111, 0o222, 0o444} {
		if cur.Mode&bits == 0 {
			m &^= bits
		}
	}
	if !cur.Mode.IsDir() {
		m &^= fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	}
	return m
}

// applyTmpfiles applies the image's tmpfiles.d at build time: every boot
// of a keel machine starts from the image, so what systemd-tmpfiles
// would make at boot is made once, here. Lines come in path order
// (parents first, patterns last); the first line for a path wins, as in
// systemd. It returns the lines skipped.
func (ed *editor) applyTmpfiles(db *accountDB, files []confFile, arch string) ([]error, error) {
	var items []*tmpfilesItem
	var skipped []error
	for _, f := range files {
		its, sk, err := parseTmpfiles(f, arch)
		if err != nil {
			return nil, err
		}
		items = append(items, its...)
		skipped = append(skipped, sk...)
	}
	slices.SortStableFunc(items, func(a, b *tmpfilesItem) int {
		if a.glob() != b.glob() {
			if a.glob() {
				return 1
			}
			return -1
		}
		return slices.Compare(strings.Split(a.path, "/"), strings.Split(b.path, "/"))
	})
	first := map[string]*tmpfilesItem{}
	for _, it := range items {
		key := fmt.Sprintf("%t %s", it.creates(), it.path)
		if prev, dup := first[key]; dup {
			skipped = append(skipped, fmt.Errorf("%s: %s: %w: %s already set it", it.at, it.path, errSkip, prev.at))
			continue
		}
		first[key] = it
		err := ed.applyTmpfilesItem(db, it)
		switch {
		case err == nil:
		case errors.Is(err, errSkip) || it.minus:
			skipped = append(skipped, fmt.Errorf("%s: %s: %w", it.at, it.path, err))
		default:
			return nil, fmt.Errorf("%s: %s: %w (fix the package, or leave the file out of the image: for a Debian package's, [debian] paths-exclude = [%q])", it.at, it.path, err, it.at.file)
		}
	}
	return skipped, nil
}

func (ed *editor) applyTmpfilesItem(db *accountDB, it *tmpfilesItem) error {
	if it.glob() {
		return ed.adjustMatching(db, it)
	}
	rp, err := ed.view.Resolve(it.path)
	if err != nil {
		return err
	}
	cur, exists := ed.view.Get(rp)
	if exists && it.eq && it.creates() && cur.Mode.Type() != wantType(it.typ) {
		exists = false // "=": an object of another type is replaced
	}
	switch it.typ {
	case 'd', 'D', 'v', 'q', 'Q':
		switch {
		case !exists:
			return ed.create(db, it, rp, fs.ModeDir, 0o755, nil)
		case !cur.Mode.IsDir():
			return fmt.Errorf("exists and is not a directory (a %s)", typeName(cur.Mode))
		}
		return ed.adjust(db, it, cur)
	case 'f':
		switch {
		case !exists:
			return ed.create(db, it, rp, 0, 0o644, []byte(it.arg))
		case !cur.Mode.IsRegular():
			return fmt.Errorf("exists and is not a regular file (a %s)", typeName(cur.Mode))
		case it.plus:
			mode, uid, gid, err := it.attrs(db, cur, 0o644)
			if err != nil {
				return err
			}
			return ed.putFile(rp, mode, uid, gid, []byte(it.arg))
		}
		return ed.adjust(db, it, cur)
	case 'p':
		switch {
		case !exists || it.plus && cur.Mode.Type() != fs.ModeNamedPipe:
			return ed.create(db, it, rp, fs.ModeNamedPipe, 0o644, nil)
		case cur.Mode.Type() != fs.ModeNamedPipe:
			return fmt.Errorf("exists and is not a FIFO (a %s)", typeName(cur.Mode))
		}
		return ed.adjust(db, it, cur)
	case 'L':
		if exists && !it.plus {
			return nil
		}
		target := it.arg
		if !it.argSet {
			target = path.Join("/usr/share/factory", it.path)
		}
		return ed.put(fstree.Entry{Path: rp, Mode: fs.ModeSymlink | 0o777, Linkname: target})
	case 'C':
		if exists {
			return nil
		}
		return ed.copyTree(db, it, rp)
	case 'e':
		if exists && cur.Mode.IsDir() {
			return ed.adjust(db, it, cur)
		}
		return nil
	case 'z', 'Z':
		if !exists {
			return nil
		}
		return ed.adjustTree(db, it, cur)
	}
	return fmt.Errorf("unknown line type %q", it.typ)
}

func wantType(typ byte) fs.FileMode {
	switch typ {
	case 'd', 'D', 'v', 'q', 'Q':
		return fs.ModeDir
	case 'p':
		return fs.ModeNamedPipe
	case 'L':
		return fs.ModeSymlink
	}
	return 0
}

func typeName(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symbolic link"
	case fs.ModeNamedPipe:
		return "FIFO"
	}
	return "device"
}

// create makes a new object of type typ at rp.
func (ed *editor) create(db *accountDB, it *tmpfilesItem, rp string, typ, def fs.FileMode, data []byte) error {
	mode, uid, gid, err := it.attrs(db, nil, def)
	if err != nil {
		return err
	}
	if typ == 0 {
		return ed.putFile(rp, mode, uid, gid, data)
	}
	return ed.put(fstree.Entry{Path: rp, Mode: typ | mode, UID: uid, GID: gid})
}

// adjust sets an existing object's mode and owner as the line says.
func (ed *editor) adjust(db *accountDB, it *tmpfilesItem, cur *fstree.Entry) error {
	mode, uid, gid, err := it.attrs(db, cur, 0)
	if err != nil {
		return err
	}
	if mode == cur.Mode&permBits && uid == cur.UID && gid == cur.GID {
		return nil
	}
	e := *cur
	e.Mode, e.UID, e.GID = cur.Mode.Type()|mode, uid, gid
	return ed.put(e)
}

// adjustTree is z (the object) and Z (the object and all below it);
// symbolic links are left alone, as systemd does not follow them.
func (ed *editor) adjustTree(db *accountDB, it *tmpfilesItem, top *fstree.Entry) error {
	targets := []*fstree.Entry{top}
	if it.typ == 'Z' && top.Mode.IsDir() {
		targets = append(targets, ed.below(top.Path)...)
	}
	for _, e := range targets {
		if e.Mode.Type() == fs.ModeSymlink {
			continue
		}
		if err := ed.adjust(db, it, e); err != nil {
			return err
		}
	}
	return nil
}

// adjustMatching applies an e, z or Z line whose path is a pattern to
// every object it matches.
func (ed *editor) adjustMatching(db *accountDB, it *tmpfilesItem) error {
	for _, e := range ed.view.Entries() {
		if ok, err := path.Match(it.path, "/"+e.Path); err != nil {
			return fmt.Errorf("pattern %q: %w", it.path, err)
		} else if !ok {
			continue
		}
		var err error
		switch {
		case it.typ == 'e' && e.Mode.IsDir():
			err = ed.adjust(db, it, e)
		case it.typ != 'e':
			err = ed.adjustTree(db, it, e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// below lists the entries under the directory p.
func (ed *editor) below(p string) []*fstree.Entry {
	var out []*fstree.Entry
	for _, e := range ed.view.Entries() {
		if strings.HasPrefix(e.Path, p+"/") {
			out = append(out, e)
		}
	}
	return out
}

// copyTree is C: a copy of the source (the argument, else
// /usr/share/factory/PATH) inside the image, its top taking the line's
// mode and owner where it sets them.
func (ed *editor) copyTree(db *accountDB, it *tmpfilesItem, rp string) error {
	src := it.arg
	if !it.argSet {
		src = path.Join("/usr/share/factory", it.path)
	}
	rsrc, err := ed.view.Resolve(src)
	if err != nil {
		return skipf("source %s: %v", src, err)
	}
	top, ok := ed.view.Get(rsrc)
	if !ok {
		return skipf("no source %s in the image", src)
	}
	mode, uid, gid, err := it.attrs(db, top, 0)
	if err != nil {
		return err
	}
	e := *top
	e.Path, e.Mode, e.UID, e.GID = rp, top.Mode.Type()|mode, uid, gid
	var rest []*fstree.Entry
	if top.Mode.IsDir() {
		rest = ed.below(rsrc)
	}
	if err := ed.put(e); err != nil {
		return err
	}
	for _, c := range rest {
		cc := *c
		cc.Path = path.Join(rp, strings.TrimPrefix(c.Path, rsrc+"/"))
		if err := ed.put(cc); err != nil {
			return err
		}
	}
	return nil
}
