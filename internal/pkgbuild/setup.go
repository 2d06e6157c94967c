package pkgbuild

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/spec"
)

// editor changes a package image: it reads the merged view of the
// image's layers and writes each change both there (so later changes see
// it) and into a layer of its own.
type editor struct {
	view, out *fstree.Tree
}

// put places e (at its resolved path) in the view and the layer. The
// layer also gets e's parent directories as the view has them, so that
// it does not reset their owners and modes to root 0755.
func (ed *editor) put(e fstree.Entry) error {
	var missing []string
	for d := path.Dir(e.Path); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := ed.out.Get(d); ok {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if pe, ok := ed.view.Get(missing[i]); ok && pe.Mode.IsDir() {
			if err := ed.out.Add(*pe); err != nil {
				return err
			}
		}
	}
	if err := ed.view.Add(e); err != nil {
		return err
	}
	return ed.out.Add(e)
}

// putFile places a regular file holding data.
func (ed *editor) putFile(p string, mode fs.FileMode, uid, gid int, data []byte) error {
	digest, size, err := ed.view.Store().Put(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return ed.put(fstree.Entry{Path: p, Mode: mode & permBits, UID: uid, GID: gid, Size: size, Digest: digest})
}

// setupLayer makes the layer that stands in for the maintainer scripts
// keel never runs, from the image's parts: /etc/passwd, /etc/group and
// /etc/shadow from the image's own files (or Debian's base-passwd
// masters), the package's [accounts] and the image's sysusers.d; the
// home directories of [accounts]; and what the image's tmpfiles.d makes.
// It returns nil when there is nothing to change, and the lines of
// sysusers.d and tmpfiles.d it skipped.
func setupLayer(store *fstree.Store, parts []part, pkg *spec.Package, arch string) (*fstree.Tree, []error, error) {
	view := fstree.New(store)
	for _, pt := range parts {
		if err := view.Merge(pt.tree); err != nil {
			return nil, nil, err
		}
	}
	ed := &editor{view: view, out: fstree.New(store)}
	origin := path.Join(pkg.Dir, spec.PackageFile)
	sysusers, err := readConfDir(view, "sysusers.d")
	if err != nil {
		return nil, nil, err
	}
	tmpfiles, err := readConfDir(view, "tmpfiles.d")
	if err != nil {
		return nil, nil, err
	}
	db, err := loadAccounts(view)
	if err != nil {
		return nil, nil, err
	}
	var skipped []error
	var homes []*user
	if pkg.Accounts != nil {
		if homes, err = db.applyAccounts(origin, pkg.Accounts); err != nil {
			return nil, nil, err
		}
	}
	sk, err := db.applySysusers(view, sysusers, arch)
	if err != nil {
		return nil, nil, err
	}
	skipped = append(skipped, sk...)
	if pkg.Accounts != nil {
		if err := db.addMemberships(origin, pkg.Accounts); err != nil {
			return nil, nil, err
		}
	}
	if db.changed {
		db.ensureRoot()
		if err := ed.writeAccounts(db); err != nil {
			return nil, nil, err
		}
	}
	for _, u := range homes {
		if err := ed.makeHome(u); err != nil {
			return nil, nil, err
		}
	}
	sk, err = ed.applyTmpfiles(db, tmpfiles, arch)
	if err != nil {
		return nil, nil, err
	}
	skipped = append(skipped, sk...)
	if len(ed.out.Entries()) == 0 {
		return nil, skipped, nil
	}
	return ed.out, skipped, nil
}

// loadAccounts reads the image's /etc/passwd, /etc/group and
// /etc/shadow, or for a missing passwd or group file base-passwd's
// master copy, as its postinst would copy it.
func loadAccounts(view *fstree.Tree) (*accountDB, error) {
	db := newAccountDB()
	for _, f := range []struct{ file, master string }{{passwdPath, passwdMasterPath}, {groupPath, groupMasterPath}} {
		origin := f.file
		data, found, err := readTreeFile(view, f.file)
		if err == nil && !found {
			origin = f.master + " (base-passwd)"
			data, found, err = readTreeFile(view, f.master)
			db.changed = db.changed || found
		}
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if f.file == passwdPath {
			users, err := parsePasswd(origin, data)
			if err != nil {
				return nil, err
			}
			for _, u := range users {
				if err := db.addBaseUser(u); err != nil {
					return nil, err
				}
			}
			continue
		}
		groups, err := parseGroup(origin, data)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			if err := db.addBaseGroup(g); err != nil {
				return nil, err
			}
		}
	}
	data, found, err := readTreeFile(view, shadowPath)
	if err != nil {
		return nil, err
	}
	if found {
		if db.shadow, err = parseShadow(shadowPath, data); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// writeAccounts writes /etc/passwd and /etc/group (0644) and /etc/shadow
// (0640 root:shadow, or 0600 root:root without a shadow group).
func (ed *editor) writeAccounts(db *accountDB) error {
	shadowGID, shadowMode := db.shadowOwner()
	for _, f := range []struct {
		path string
		data []byte
		mode fs.FileMode
		gid  int
	}{
		{passwdPath, db.passwdFile(), 0o644, 0},
		{groupPath, db.groupFile(), 0o644, 0},
		{shadowPath, db.shadowFile(), fs.FileMode(shadowMode), shadowGID},
	} {
		rp, err := ed.view.Resolve(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		if e, ok := ed.view.Get(rp); ok && !e.Mode.IsRegular() {
			return fmt.Errorf("%s: the image has a %s there, not a file", f.path, typeName(e.Mode))
		}
		if err := ed.putFile(rp, f.mode, 0, f.gid, f.data); err != nil {
			return err
		}
	}
	return nil
}

// makeHome creates an [[accounts.user]]'s home directory (0755, the
// user's), unless it is DefaultHome or "/" or the image has it already:
// an existing one is left as the image made it.
func (ed *editor) makeHome(u *user) error {
	if u.home == spec.DefaultHome || u.home == "/" {
		return nil
	}
	rp, err := ed.view.Resolve(u.home)
	if err != nil {
		return fmt.Errorf("%s: home %s: %w", u.origin, u.home, err)
	}
	if _, ok := ed.view.Get(rp); ok {
		return nil
	}
	return ed.put(fstree.Entry{Path: rp, Mode: fs.ModeDir | 0o755, UID: int(u.uid), GID: int(u.gid)})
}
