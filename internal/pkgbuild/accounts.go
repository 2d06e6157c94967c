package pkgbuild

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/keelos/keel/internal/spec"
)

// The account files keel writes into a package image, and Debian's
// base-passwd masters, which its postinst copies to /etc when the image
// has no /etc/passwd or /etc/group yet.
const (
	passwdPath       = "/etc/passwd"
	groupPath        = "/etc/group"
	shadowPath       = "/etc/shadow"
	passwdMasterPath = "/usr/share/base-passwd/passwd.master"
	groupMasterPath  = "/usr/share/base-passwd/group.master"
)

// maxAccountFile bounds an account file or a sysusers.d/tmpfiles.d file
// read from an image: real ones are a few KiB.
const maxAccountFile = 1 << 20

// lockedPassword is the password field of every account keel makes: no
// password matches it, while key-based logins (OpenSSH without PAM
// refuses accounts locked with "!") still work, as Debian's base-passwd
// accounts do.
const lockedPassword = "*"

// user is one line of /etc/passwd; origin says where it was declared.
type user struct {
	name, password     string
	uid, gid           uint32
	gecos, home, shell string
	origin             string
}

// group is one line of /etc/group.
type group struct {
	name, password string
	gid            uint32
	members        []string
	origin         string
}

// accountDB is an image's users and groups as keel builds them up: first
// what the image holds, then [accounts], then sysusers.d.
type accountDB struct {
	users       []*user
	groups      []*group
	userByName  map[string]*user
	userByID    map[uint32]*user
	groupByName map[string]*group
	groupByID   map[uint32]*group
	// shadow holds the lines of the image's own /etc/shadow, by name.
	shadow map[string]string
	// changed says the files differ from the image's own.
	changed bool
}

func newAccountDB() *accountDB {
	return &accountDB{
		userByName: map[string]*user{}, userByID: map[uint32]*user{},
		groupByName: map[string]*group{}, groupByID: map[uint32]*group{},
		shadow: map[string]string{},
	}
}

// lines splits an account file into its lines, numbered from 1, without
// empty ones and comments.
func lines(data []byte) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		for i, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSuffix(l, "\r")
			if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if !yield(i+1, l) {
				return
			}
		}
	}
}

func parseID(s string) (uint32, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a numeric id", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an id from 0 to 4294967295", s)
	}
	if err := spec.CheckAccountID(uint32(n)); err != nil {
		return 0, err
	}
	return uint32(n), nil
}

// parsePasswd reads an /etc/passwd from an image, as strictly as the
// spec: origin names it in errors.
func parsePasswd(origin string, data []byte) ([]*user, error) {
	var out []*user
	for n, l := range lines(data) {
		u, err := parsePasswdLine(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", origin, n, err)
		}
		u.origin = origin
		out = append(out, u)
	}
	return out, nil
}

func parsePasswdLine(l string) (*user, error) {
	f := strings.Split(l, ":")
	if len(f) != 7 {
		return nil, fmt.Errorf("%d fields, want 7 (name:password:uid:gid:gecos:home:shell)", len(f))
	}
	if err := spec.CheckAccountName(f[0]); err != nil {
		return nil, err
	}
	uid, err := parseID(f[2])
	if err != nil {
		return nil, fmt.Errorf("uid: %w", err)
	}
	gid, err := parseID(f[3])
	if err != nil {
		return nil, fmt.Errorf("gid: %w", err)
	}
	for _, s := range []string{f[1], f[4], f[5], f[6]} {
		if err := spec.CheckAccountText(s); err != nil {
			return nil, err
		}
	}
	return &user{name: f[0], password: f[1], uid: uid, gid: gid, gecos: f[4], home: f[5], shell: f[6]}, nil
}

// parseGroup reads an /etc/group from an image.
func parseGroup(origin string, data []byte) ([]*group, error) {
	var out []*group
	for n, l := range lines(data) {
		f := strings.Split(l, ":")
		if len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 4 (name:password:gid:members)", origin, n, len(f))
		}
		if err := spec.CheckAccountName(f[0]); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", origin, n, err)
		}
		gid, err := parseID(f[2])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: gid: %w", origin, n, err)
		}
		if err := spec.CheckAccountText(f[1]); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", origin, n, err)
		}
		g := &group{name: f[0], password: f[1], gid: gid, origin: origin}
		if f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if err := spec.CheckAccountName(m); err != nil {
					return nil, fmt.Errorf("%s:%d: member: %w", origin, n, err)
				}
				g.members = append(g.members, m)
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// parseShadow reads an /etc/shadow from an image: its lines are kept as
// they are, by name.
func parseShadow(origin string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	for n, l := range lines(data) {
		f := strings.Split(l, ":")
		if len(f) != 9 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 9", origin, n, len(f))
		}
		if err := spec.CheckAccountName(f[0]); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", origin, n, err)
		}
		out[f[0]] = l
	}
	return out, nil
}

// addBaseUser adds a user of the image's own files, where several names
// may share an id (as root and toor do).
func (db *accountDB) addBaseUser(u *user) error {
	if prev, ok := db.userByName[u.name]; ok {
		return fmt.Errorf("%s: user %q is listed twice (also in %s)", u.origin, u.name, prev.origin)
	}
	db.insertUser(u)
	return nil
}

func (db *accountDB) addBaseGroup(g *group) error {
	if prev, ok := db.groupByName[g.name]; ok {
		return fmt.Errorf("%s: group %q is listed twice (also in %s)", g.origin, g.name, prev.origin)
	}
	db.insertGroup(g)
	return nil
}

func (db *accountDB) insertUser(u *user) {
	db.users = append(db.users, u)
	db.userByName[u.name] = u
	if _, taken := db.userByID[u.uid]; !taken {
		db.userByID[u.uid] = u
	}
}

func (db *accountDB) insertGroup(g *group) {
	db.groups = append(db.groups, g)
	db.groupByName[g.name] = g
	if _, taken := db.groupByID[g.gid]; !taken {
		db.groupByID[g.gid] = g
	}
}

// newUser adds a user keel makes, refusing a uid another name holds.
func (db *accountDB) newUser(u *user) error {
	if prev, ok := db.userByID[u.uid]; ok && prev.name != u.name {
		return fmt.Errorf("%s: uid %d of user %q is already user %q's (%s)", u.origin, u.uid, u.name, prev.name, prev.origin)
	}
	db.insertUser(u)
	db.changed = true
	return nil
}

// newGroup adds a group keel makes, refusing a gid another name holds.
func (db *accountDB) newGroup(g *group) error {
	if prev, ok := db.groupByID[g.gid]; ok && prev.name != g.name {
		return fmt.Errorf("%s: gid %d of group %q is already group %q's (%s)", g.origin, g.gid, g.name, prev.name, prev.origin)
	}
	db.insertGroup(g)
	db.changed = true
	return nil
}

// addMember puts user in group's member list, once.
func (db *accountDB) addMember(g *group, name string) {
	for _, m := range g.members {
		if m == name {
			return
		}
	}
	g.members = append(g.members, name)
	db.changed = true
}

// ensureRoot adds root (uid and gid 0), first, when the files have
// none: a passwd without it breaks every program that looks up its own
// user.
func (db *accountDB) ensureRoot() {
	if _, ok := db.groupByName["root"]; !ok {
		if _, ok := db.groupByID[0]; !ok {
			db.insertGroup(&group{name: "root", password: "x", gid: 0, origin: "keel's root group"})
			db.groups = append(db.groups[len(db.groups)-1:], db.groups[:len(db.groups)-1]...)
			db.changed = true
		}
	}
	if _, ok := db.userByName["root"]; !ok {
		if _, ok := db.userByID[0]; !ok {
			db.insertUser(&user{name: "root", password: "x", gecos: "root", home: "/root", shell: "/bin/sh", origin: "keel's root user"})
			db.users = append(db.users[len(db.users)-1:], db.users[:len(db.users)-1]...)
			db.changed = true
		}
	}
}

// applyAccounts adds a package's [accounts]: a name the image already has
// must keep its id (the entry's other fields replace the image's); an id
// held by another name is refused. It returns the home directories to
// create. Supplementary groups are joined later (addMemberships), once
// sysusers.d has made its groups too.
func (db *accountDB) applyAccounts(origin string, a *spec.Accounts) ([]*user, error) {
	for _, sg := range a.Groups {
		at := fmt.Sprintf("%s [[accounts.group]] %s", origin, sg.Name)
		if prev, ok := db.groupByName[sg.Name]; ok {
			if prev.gid != sg.GID {
				return nil, fmt.Errorf("%s: gid %d, but %s has group %q as gid %d: use gid = %d, or another name",
					at, sg.GID, prev.origin, sg.Name, prev.gid, prev.gid)
			}
			continue
		}
		if err := db.newGroup(&group{name: sg.Name, password: "x", gid: sg.GID, origin: at}); err != nil {
			return nil, err
		}
	}
	var homes []*user
	for _, su := range a.Users {
		at := fmt.Sprintf("%s [[accounts.user]] %s", origin, su.Name)
		gid, err := db.primaryGroup(at, su)
		if err != nil {
			return nil, err
		}
		u := &user{name: su.Name, password: "x", uid: su.UID, gid: gid, gecos: su.Gecos,
			home: cmpOr(su.Home, spec.DefaultHome), shell: cmpOr(su.Shell, spec.DefaultShell), origin: at}
		if prev, ok := db.userByName[su.Name]; ok {
			if prev.uid != su.UID {
				return nil, fmt.Errorf("%s: uid %d, but %s has user %q as uid %d: use uid = %d, or another name",
					at, su.UID, prev.origin, su.Name, prev.uid, prev.uid)
			}
			u.password = prev.password
			*prev = *u
			db.changed = true
		} else if err := db.newUser(u); err != nil {
			return nil, err
		}
		homes = append(homes, db.userByName[su.Name])
	}
	return homes, nil
}

// primaryGroup is the gid of a [[accounts.user]]: its gid, else the
// group of its name, made with its uid when there is none.
func (db *accountDB) primaryGroup(at string, su spec.User) (uint32, error) {
	if su.GID != nil {
		return *su.GID, nil
	}
	if g, ok := db.groupByName[su.Name]; ok {
		return g.gid, nil
	}
	if prev, ok := db.groupByID[su.UID]; ok {
		return 0, fmt.Errorf("%s: its group %q would take gid %d (its uid), which is already group %q's (%s): add [[accounts.group]] %s with a free gid, or set the user's gid",
			at, su.Name, su.UID, prev.name, prev.origin, su.Name)
	}
	if err := db.newGroup(&group{name: su.Name, password: "x", gid: su.UID, origin: at}); err != nil {
		return 0, err
	}
	return su.UID, nil
}

// addMemberships puts each [[accounts.user]] in its supplementary groups.
func (db *accountDB) addMemberships(origin string, a *spec.Accounts) error {
	for _, su := range a.Users {
		for _, name := range su.Groups {
			g, ok := db.groupByName[name]
			if !ok {
				return fmt.Errorf("%s [[accounts.user]] %s: groups: no group %q in [[accounts.group]], the image's /etc/group or sysusers.d: declare it with [[accounts.group]]",
					origin, su.Name, name)
			}
			db.addMember(g, su.Name)
		}
	}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// passwdFile is /etc/passwd: every user, the password in /etc/shadow.
func (db *accountDB) passwdFile() []byte {
	var b bytes.Buffer
	for _, u := range db.users {
		fmt.Fprintf(&b, "%s:x:%d:%d:%s:%s:%s\n", u.name, u.uid, u.gid, u.gecos, u.home, u.shell)
	}
	return b.Bytes()
}

// groupFile is /etc/group.
func (db *accountDB) groupFile() []byte {
	var b bytes.Buffer
	for _, g := range db.groups {
		fmt.Fprintf(&b, "%s:%s:%d:%s\n", g.name, cmpOr(g.password, "x"), g.gid, strings.Join(g.members, ","))
	}
	return b.Bytes()
}

// shadowFile is /etc/shadow: the image's own line of a user when it had
// one, else the password the user's passwd line held (as pwconv moves
// it) or, for the users keel makes, a locked one. Password aging is off
// (empty fields), so nothing depends on the build's date.
func (db *accountDB) shadowFile() []byte {
	var b bytes.Buffer
	for _, u := range db.users {
		if l, ok := db.shadow[u.name]; ok {
			b.WriteString(l)
			b.WriteByte('\n')
			continue
		}
		pw := u.password
		if pw == "x" {
			pw = lockedPassword
		}
		fmt.Fprintf(&b, "%s:%s:::::::\n", u.name, pw)
	}
	return b.Bytes()
}

// shadowOwner is who may read /etc/shadow, as in Debian: root and the
// shadow group (mode 0640), or root alone (0600) without that group.
func (db *accountDB) shadowOwner() (gid int, mode uint32) {
	if g, ok := db.groupByName["shadow"]; ok {
		return int(g.gid), 0o640
	}
	return 0, 0o600
}

// lookupUser resolves a user field of tmpfiles.d: a name or a number.
func (db *accountDB) lookupUser(s string) (uint32, error) {
	if u, ok := db.userByName[s]; ok {
		return u.uid, nil
	}
	if id, err := parseID(s); err == nil {
		return id, nil
	}
	return 0, fmt.Errorf("no user %q", s)
}

// lookupGroup resolves a group field of tmpfiles.d.
func (db *accountDB) lookupGroup(s string) (uint32, error) {
	if g, ok := db.groupByName[s]; ok {
		return g.gid, nil
	}
	if id, err := parseID(s); err == nil {
		return id, nil
	}
	return 0, fmt.Errorf("no group %q", s)
}
