package spec

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Accounts are the users and groups a package's image declares: keel
// writes them into the image's /etc/passwd, /etc/group and /etc/shadow,
// where a Debian package's maintainer scripts (which keel never runs)
// would have created them with adduser.
type Accounts struct {
	Groups []Group `toml:"group,omitempty" json:"group,omitempty"`
	Users  []User  `toml:"user,omitempty" json:"user,omitempty"`
}

// Group is one [[accounts.group]]: a group with a fixed id.
type Group struct {
	Name string `toml:"name" json:"name"`
	GID  uint32 `toml:"gid" json:"gid"`
}

// User is one [[accounts.user]]: a user with a fixed id.
type User struct {
	Name string `toml:"name" json:"name"`
	UID  uint32 `toml:"uid" json:"uid"`
	// GID is the primary group; unset, it is the group of the user's name
	// (declared, already in the image, or made with the user's uid).
	GID    *uint32  `toml:"gid,omitempty" json:"gid,omitempty"`
	Groups []string `toml:"groups,omitempty" json:"groups,omitempty"` // supplementary groups, by name
	Gecos  string   `toml:"gecos,omitempty" json:"gecos,omitempty"`
	Home   string   `toml:"home,omitempty" json:"home,omitempty"`   // default DefaultHome
	Shell  string   `toml:"shell,omitempty" json:"shell,omitempty"` // default DefaultShell
}

// Account defaults: Debian's for a system user that is not meant to log in.
const (
	DefaultHome  = "/nonexistent"
	DefaultShell = "/usr/sbin/nologin"
)

// MaxAccountNameLen is systemd's bound on a user or group name (the
// kernel knows no names; utmp and many tools break on longer ones).
const MaxAccountNameLen = 31

// accountNameRE is systemd's rule for user and group names (sysusers.d):
// letters, digits, '_' and '-', not starting with a digit or '-'.
var accountNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// CheckAccountName reports whether name may name a user or a group. The
// same rule applies to [accounts], sysusers.d lines and the entries of an
// image's /etc/passwd and /etc/group.
func CheckAccountName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty user or group name")
	case len(name) > MaxAccountNameLen:
		return fmt.Errorf("%s is too long for a user or group name (%d characters; at most %d)", abbrev(name), len(name), MaxAccountNameLen)
	case !accountNameRE.MatchString(name):
		return fmt.Errorf("%q is not a valid user or group name (letters, digits, '_' and '-', starting with a letter or '_')", name)
	}
	return nil
}

// CheckAccountID refuses the id that means "no id": (uid_t)-1, which
// chown(2) and setuid(2) take as "unchanged".
func CheckAccountID(id uint32) error {
	if id == math.MaxUint32 {
		return fmt.Errorf("%d is (uid_t)-1, which means \"no id\" to the kernel", id)
	}
	return nil
}

// CheckAccountText reports a GECOS field that would break the line of
// /etc/passwd holding it.
func CheckAccountText(s string) error {
	if i := strings.IndexFunc(s, func(r rune) bool { return r == ':' || r < ' ' || r == 0x7f }); i >= 0 {
		return fmt.Errorf("%q holds %q, which /etc/passwd cannot", s, s[i:i+1])
	}
	return nil
}

// checkAccountPath checks a home or shell: an absolute clean path that
// fits in a line of /etc/passwd.
func (l *located) checkAccountPath(p keyPath, v string) {
	if strings.ContainsAny(v, ":\n") {
		l.errorf(p, "%q holds ':' or a newline, which /etc/passwd cannot", v)
		return
	}
	l.checkAbs(p, v)
}

// checkAccounts validates a package's [accounts]: names, ids, paths, and
// no name or id twice among the users, nor among the groups.
func (l *located) checkAccounts(p keyPath, a *Accounts) {
	gp := p.field("group")
	groupNames, gids := map[string]keyPath{}, map[uint32]keyPath{}
	for i, g := range a.Groups {
		ep := gp.entry(i, g.Name)
		l.checkAccountName(ep.field("name"), g.Name, "group", groupNames)
		l.checkAccountID(ep.field("gid"), g.GID, true, "gid", gids)
	}
	up := p.field("user")
	userNames, uids := map[string]keyPath{}, map[uint32]keyPath{}
	for i, u := range a.Users {
		ep := up.entry(i, u.Name)
		l.checkAccountName(ep.field("name"), u.Name, "user", userNames)
		l.checkAccountID(ep.field("uid"), u.UID, true, "uid", uids)
		if u.GID != nil {
			l.checkAccountID(ep.field("gid"), *u.GID, false, "", nil)
		}
		seen := map[string]bool{}
		for j, g := range u.Groups {
			switch err := CheckAccountName(g); {
			case err != nil:
				l.errorf(ep.field("groups").elem(j), "%v", err)
			case seen[g]:
				l.errorf(ep.field("groups").elem(j), "group %q is listed twice", g)
			}
			seen[g] = true
		}
		if err := CheckAccountText(u.Gecos); err != nil {
			l.errorf(ep.field("gecos"), "%v", err)
		}
		if l.has(ep.field("home")) {
			l.checkAccountPath(ep.field("home"), u.Home)
		}
		if l.has(ep.field("shell")) {
			l.checkAccountPath(ep.field("shell"), u.Shell)
		}
	}
}

// checkAccountName reports a missing, malformed or repeated name; seen
// holds the names of the entries before.
func (l *located) checkAccountName(p keyPath, name, what string, seen map[string]keyPath) {
	if !l.has(p) {
		l.errorf(p, "required")
		return
	}
	if err := CheckAccountName(name); err != nil {
		l.errorf(p, "%v", err)
		return
	}
	if prev, dup := seen[name]; dup {
		l.errorf(p, "duplicate %s name %q (first at line %d)", what, name, l.lookup(prev).line)
		return
	}
	seen[name] = p
}

// checkAccountID reports a missing (when required), reserved or repeated
// id; seen, when not nil, holds the ids of the entries before.
func (l *located) checkAccountID(p keyPath, id uint32, required bool, what string, seen map[uint32]keyPath) {
	if !l.has(p) {
		if required {
			l.errorf(p, "required")
		}
		return
	}
	if err := CheckAccountID(id); err != nil {
		l.errorf(p, "%v", err)
		return
	}
	if seen == nil {
		return
	}
	if prev, dup := seen[id]; dup {
		l.errorf(p, "duplicate %s %d (first at line %d)", what, id, l.lookup(prev).line)
		return
	}
	seen[id] = p
}
