package pkgbuild

import (
	"errors"
	"fmt"
	"hash/fnv"
	"path"
	"strings"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/spec"
)

// Automatic ids (sysusers.d's "-") come from Debian's range for
// dynamically allocated system accounts. Each name starts its search at
// its own place in the range (a hash of the name), so that a user keeps
// its id when the image gains or loses other packages' users, which
// matters for files it owns on a persistent volume.
const (
	firstAutoID = 100
	lastAutoID  = 999
)

// sysusersLine is one parsed line of a sysusers.d file.
type sysusersLine struct {
	at                 confLine
	typ                byte
	name, id           string
	gecos, home, shell string
	uidField, gidField string // u: the ID field split at ':'
	hasGID             bool
}

// parseSysusers parses one sysusers.d file. A malformed line is an error;
// a line keel does not apply comes back in skipped.
func parseSysusers(f confFile, arch string) (out []sysusersLine, skipped []error, err error) {
	for _, cl := range confLines(f) {
		l, err := parseSysusersLine(cl, arch)
		switch {
		case errors.Is(err, errSkip):
			skipped = append(skipped, fmt.Errorf("%s: %w", cl, err))
		case err != nil:
			return nil, nil, fmt.Errorf("%s: %w", cl, err)
		default:
			out = append(out, l)
		}
	}
	return out, skipped, nil
}

func parseSysusersLine(cl confLine, arch string) (sysusersLine, error) {
	f, _, err := splitFields(cl.text, 6, false)
	if err != nil {
		return sysusersLine{}, err
	}
	if len(f) < 2 {
		return sysusersLine{}, fmt.Errorf("want TYPE NAME [ID [GECOS [HOME [SHELL]]]]")
	}
	for len(f) < 6 {
		f = append(f, "-")
	}
	for i := range f {
		if f[i] == "-" {
			f[i] = ""
		}
		if f[i], err = expandSpecifiers(f[i], arch); err != nil {
			return sysusersLine{}, err
		}
	}
	if len(f[0]) != 1 {
		return sysusersLine{}, fmt.Errorf("unknown line type %q (u, g, m or r)", f[0])
	}
	l := sysusersLine{at: cl, typ: f[0][0], name: f[1], id: f[2], gecos: f[3], home: f[4], shell: f[5]}
	switch l.typ {
	case 'r':
		return l, skipf("r: keel takes automatic ids from %d-%d, by name", firstAutoID, lastAutoID)
	case 'u', 'g', 'm':
	default:
		return l, fmt.Errorf("unknown line type %q (u, g, m or r)", f[0])
	}
	if err := spec.CheckAccountName(l.name); err != nil {
		return l, err
	}
	if l.typ == 'm' {
		if err := spec.CheckAccountName(l.id); err != nil {
			return l, fmt.Errorf("group: %w", err)
		}
		return l, nil
	}
	if err := spec.CheckAccountText(l.gecos); err != nil {
		return l, fmt.Errorf("GECOS: %w", err)
	}
	for _, p := range []string{l.home, l.shell} {
		if p != "" && (!strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsAny(p, ":\n")) {
			return l, fmt.Errorf("%q is not an absolute clean path", p)
		}
	}
	l.uidField, l.gidField, l.hasGID = strings.Cut(l.id, ":")
	if l.typ == 'g' && l.hasGID {
		return l, fmt.Errorf("a group's ID is a number, a path or \"-\", not %q", l.id)
	}
	if l.uidField == "-" {
		l.uidField = ""
	}
	if l.uidField != "" && !strings.HasPrefix(l.uidField, "/") {
		if _, err := parseID(l.uidField); err != nil {
			return l, fmt.Errorf("ID: %w", err)
		}
	}
	return l, nil
}

// applySysusers creates the users and groups the image's sysusers.d
// files declare and that it does not have yet (an existing name is left
// as it is, as systemd-sysusers leaves it): groups first, then users,
// then memberships, as systemd-sysusers does. It returns the lines
// skipped.
func (db *accountDB) applySysusers(view *fstree.Tree, files []confFile, arch string) ([]error, error) {
	var all []sysusersLine
	var skipped []error
	for _, f := range files {
		ls, sk, err := parseSysusers(f, arch)
		if err != nil {
			return nil, err
		}
		all = append(all, ls...)
		skipped = append(skipped, sk...)
	}
	for _, typ := range []byte{'g', 'u', 'm'} {
		for _, l := range all {
			if l.typ != typ {
				continue
			}
			var err error
			switch typ {
			case 'g':
				_, err = db.sysusersGroup(view, l.name, l.id, l.at)
			case 'u':
				err = db.sysusersUser(view, l)
			case 'm':
				err = db.sysusersMember(view, l)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w (declare the account in the package's [accounts], which comes first, or leave the file out of the image: for a Debian package's, [debian] paths-exclude = [%q])", l.at, err, l.at.file)
			}
		}
	}
	return skipped, nil
}

// sysusersGroup makes the group name unless it exists. id is a number, a
// path whose group it takes (an automatic id when the image lacks it),
// or "" for an automatic id.
func (db *accountDB) sysusersGroup(view *fstree.Tree, name, id string, at confLine) (*group, error) {
	if g, ok := db.groupByName[name]; ok {
		return g, nil
	}
	gid, fixed, err := sysusersID(view, id, false)
	if err != nil {
		return nil, err
	}
	if !fixed {
		// Like systemd: a user of the same name lends its uid when free.
		if u, ok := db.userByName[name]; ok && db.idFree(u.uid, false, true) {
			gid, fixed = u.uid, true
		} else if gid, err = db.autoID(name, false, true); err != nil {
			return nil, err
		}
	}
	g := &group{name: name, password: "x", gid: gid, origin: at.String()}
	if err := db.newGroup(g); err != nil {
		return nil, err
	}
	return g, nil
}

// sysusersUser makes a user (and the group of its name, unless the ID
// field names another) unless the user exists.
func (db *accountDB) sysusersUser(view *fstree.Tree, l sysusersLine) error {
	if _, ok := db.userByName[l.name]; ok {
		return nil
	}
	uid, fixed, err := sysusersID(view, l.uidField, true)
	if err != nil {
		return err
	}
	var gid uint32
	gidKnown := false
	if l.hasGID {
		g, ok := db.groupByName[l.gidField]
		switch {
		case ok:
			gid = g.gid
		default:
			n, err := parseID(l.gidField)
			if err != nil {
				return fmt.Errorf("primary group %q: no such group, and not a number", l.gidField)
			}
			gid = n
		}
		gidKnown = true
	} else if g, ok := db.groupByName[l.name]; ok {
		gid, gidKnown = g.gid, true
	}
	if !fixed {
		// Like systemd: the group of the same name lends its gid when free.
		if gidKnown && !l.hasGID && db.idFree(gid, true, false) {
			uid = gid
		} else if uid, err = db.autoID(l.name, true, !gidKnown); err != nil {
			return err
		}
	}
	if !gidKnown {
		// The group of the user's name, with the uid as its gid where
		// that is free.
		id := ""
		if db.idFree(uid, false, true) {
			id = fmt.Sprint(uid)
		}
		g, err := db.sysusersGroup(view, l.name, id, l.at)
		if err != nil {
			return err
		}
		gid = g.gid
	}
	shell := l.shell
	if shell == "" {
		shell = spec.DefaultShell
		if uid == 0 {
			shell = "/bin/sh"
		}
	}
	return db.newUser(&user{name: l.name, password: "x", uid: uid, gid: gid, gecos: l.gecos,
		home: cmpOr(l.home, "/"), shell: shell, origin: l.at.String()})
}

// sysusersMember puts a user in a group, making either when missing.
func (db *accountDB) sysusersMember(view *fstree.Tree, l sysusersLine) error {
	if _, ok := db.userByName[l.name]; !ok {
		if err := db.sysusersUser(view, sysusersLine{at: l.at, typ: 'u', name: l.name}); err != nil {
			return err
		}
	}
	g, err := db.sysusersGroup(view, l.id, "", l.at)
	if err != nil {
		return err
	}
	db.addMember(g, l.name)
	return nil
}

// sysusersID reads an ID field: a number (fixed), a path in the image
// whose owner (or group) it takes (fixed when the image has it), or ""
// (automatic).
func sysusersID(view *fstree.Tree, s string, isUser bool) (id uint32, fixed bool, err error) {
	switch {
	case s == "":
		return 0, false, nil
	case strings.HasPrefix(s, "/"):
		rp, err := view.Resolve(s)
		if err != nil {
			return 0, false, nil
		}
		e, ok := view.Get(rp)
		if !ok {
			return 0, false, nil
		}
		if isUser {
			return uint32(e.UID), true, nil
		}
		return uint32(e.GID), true, nil
	}
	n, err := parseID(s)
	if err != nil {
		return 0, false, err
	}
	return n, true, nil
}

// idFree reports whether id is free as a uid (asUID) and as a gid (asGID).
func (db *accountDB) idFree(id uint32, asUID, asGID bool) bool {
	if _, taken := db.userByID[id]; asUID && taken {
		return false
	}
	if _, taken := db.groupByID[id]; asGID && taken {
		return false
	}
	return true
}

// autoID picks an automatic id for name: the first free one from the
// name's own place in firstAutoID..lastAutoID upward, wrapping around.
func (db *accountDB) autoID(name string, asUID, asGID bool) (uint32, error) {
	h := fnv.New32a()
	h.Write([]byte(name))
	span := uint32(lastAutoID - firstAutoID + 1)
	start := h.Sum32() % span
	// Users and groups share the pool, as in systemd: an id free as both
	// is taken first, so that a user and its group get the same number.
	for _, both := range []bool{true, false} {
		for i := range span {
			id := firstAutoID + (start+i)%span
			if both && db.idFree(id, true, true) || !both && db.idFree(id, asUID, asGID) {
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("no free id left in %d-%d for %q", firstAutoID, lastAutoID, name)
}
