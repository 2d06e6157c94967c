package pkgbuild

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/spec"
)

// A few lines of Debian's base-passwd masters (bookworm), as the
// package ships them in /usr/share/base-passwd.
const (
	passwdMaster = `root:*:0:0:root:/root:/bin/bash
daemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www-data:*:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`
	groupMaster = `root:*:0:
daemon:*:1:
adm:*:4:
www-data:*:33:
shadow:*:42:
nogroup:*:65534:
`
)

// fakeImage builds an image's parts in memory: each map is one layer,
// path → content; a content of "dir:" is a directory, "link:TARGET" a
// symbolic link.
type fakeImage struct {
	t     *testing.T
	store *fstree.Store
	parts []part
}

func newFakeImage(t *testing.T, layers ...map[string]string) *fakeImage {
	t.Helper()
	store, err := fstree.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	im := &fakeImage{t: t, store: store}
	for _, l := range layers {
		tr := fstree.New(store)
		for p, c := range l {
			switch {
			case c == "dir:":
				err = tr.AddDir(p, 0o755, 0, 0)
			case strings.HasPrefix(c, "link:"):
				err = tr.AddSymlink(p, strings.TrimPrefix(c, "link:"), 0, 0)
			default:
				err = tr.AddFile(p, 0o644, 0, 0, strings.NewReader(c))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		im.parts = append(im.parts, part{"test", tr})
	}
	return im
}

// setup runs setupLayer for a package with accs and returns the layer,
// as the image's last layer, and the skipped lines.
func (im *fakeImage) setup(accs *spec.Accounts) (*fstree.Tree, []error, error) {
	return setupLayer(im.store, im.parts, &spec.Package{Name: "p", Dir: "/pkg", Accounts: accs}, "amd64")
}

func (im *fakeImage) mustSetup(accs *spec.Accounts) (*fstree.Tree, []error) {
	im.t.Helper()
	tr, skipped, err := im.setup(accs)
	if err != nil {
		im.t.Fatal(err)
	}
	if tr == nil {
		im.t.Fatal("no layer")
	}
	return tr, skipped
}

func content(t *testing.T, tr *fstree.Tree, p string) string {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		t.Fatalf("%s: not in the layer", p)
	}
	rc, err := tr.Open(e)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// meta is an entry's type, permissions and owner, as "d0755 33:33".
func meta(t *testing.T, tr *fstree.Tree, p string) string {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		return "missing"
	}
	typ := map[fs.FileMode]string{0: "-", fs.ModeDir: "d", fs.ModeSymlink: "l", fs.ModeNamedPipe: "p"}[e.Mode.Type()]
	s := fmt.Sprintf("%s%04o %d:%d", typ, fstree.UnixPerm(e.Mode), e.UID, e.GID)
	if e.Linkname != "" {
		s += " -> " + e.Linkname
	}
	return s
}

func uid(n uint32) *uint32 { return &n }

func TestAccountsWritePasswdGroupShadow(t *testing.T) {
	im := newFakeImage(t, map[string]string{"/usr/bin/app": "x"})
	tr, _ := im.mustSetup(&spec.Accounts{
		Groups: []spec.Group{{Name: "app", GID: 1500}, {Name: "logs", GID: 1501}},
		Users: []spec.User{
			{Name: "app", UID: 1500, Home: "/var/lib/app", Groups: []string{"logs"}, Gecos: "The app"},
			{Name: "helper", UID: 1600, Shell: "/bin/sh"},
			{Name: "other", UID: 1700, GID: uid(1500), Groups: []string{"logs", "app"}},
		},
	})
	wantPasswd := `root:x:0:0:root:/root:/bin/sh
app:x:1500:1500:The app:/var/lib/app:/usr/sbin/nologin
helper:x:1600:1600::/nonexistent:/bin/sh
other:x:1700:1500::/nonexistent:/usr/sbin/nologin
`
	wantGroup := `root:x:0:
app:x:1500:other
logs:x:1501:app,other
helper:x:1600:
`
	wantShadow := "root:*:::::::\napp:*:::::::\nhelper:*:::::::\nother:*:::::::\n"
	if got := content(t, tr, "/etc/passwd"); got != wantPasswd {
		t.Errorf("/etc/passwd:\n%s\nwant:\n%s", got, wantPasswd)
	}
	if got := content(t, tr, "/etc/group"); got != wantGroup {
		t.Errorf("/etc/group:\n%s\nwant:\n%s", got, wantGroup)
	}
	if got := content(t, tr, "/etc/shadow"); got != wantShadow {
		t.Errorf("/etc/shadow:\n%s\nwant:\n%s", got, wantShadow)
	}
	for p, want := range map[string]string{
		"/etc/passwd":  "-0644 0:0",
		"/etc/group":   "-0644 0:0",
		"/etc/shadow":  "-0600 0:0", // no shadow group: root alone
		"/var/lib/app": "d0755 1500:1500",
		"/var/lib":     "d0755 0:0",
		"/nonexistent": "missing",
		"/usr/bin/app": "missing", // the layer holds only what changed
	} {
		if got := meta(t, tr, p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
}

// TestAccountsMergeWithBasePasswd checks that base-passwd's masters are
// the image's accounts when it has no /etc/passwd, that [accounts] may
// restate one of them with the same id, and that the shadow file is
// Debian's 0640 root:shadow.
func TestAccountsMergeWithBasePasswd(t *testing.T) {
	im := newFakeImage(t, map[string]string{
		passwdMasterPath: passwdMaster,
		groupMasterPath:  groupMaster,
		"/var/lib/nginx": "dir:",
	})
	tr, _ := im.mustSetup(&spec.Accounts{
		Users: []spec.User{
			{Name: "www-data", UID: 33, Home: "/var/lib/nginx", Groups: []string{"adm"}},
			{Name: "web", UID: 1000},
		},
	})
	wantPasswd := `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www-data:x:33:33::/var/lib/nginx:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
web:x:1000:1000::/nonexistent:/usr/sbin/nologin
`
	wantGroup := `root:*:0:
daemon:*:1:
adm:*:4:www-data
www-data:*:33:
shadow:*:42:
nogroup:*:65534:
web:x:1000:
`
	if got := content(t, tr, "/etc/passwd"); got != wantPasswd {
		t.Errorf("/etc/passwd:\n%s\nwant:\n%s", got, wantPasswd)
	}
	if got := content(t, tr, "/etc/group"); got != wantGroup {
		t.Errorf("/etc/group:\n%s\nwant:\n%s", got, wantGroup)
	}
	if got, want := content(t, tr, "/etc/shadow"), "root:*:::::::\ndaemon:*:::::::\nwww-data:*:::::::\nnobody:*:::::::\nweb:*:::::::\n"; got != want {
		t.Errorf("/etc/shadow:\n%s\nwant:\n%s", got, want)
	}
	if got := meta(t, tr, "/etc/shadow"); got != "-0640 0:42" {
		t.Errorf("/etc/shadow: %s, want -0640 0:42 (root:shadow)", got)
	}
	// The home exists already: left as the package made it.
	if got := meta(t, tr, "/var/lib/nginx"); got != "missing" {
		t.Errorf("/var/lib/nginx was changed: %s", got)
	}

	// Without [accounts] the masters alone become /etc/passwd, as
	// base-passwd's postinst copies them.
	tr, _ = im.mustSetup(nil)
	if got := content(t, tr, "/etc/passwd"); !strings.HasPrefix(got, "root:x:0:0:root:/root:/bin/bash\n") {
		t.Errorf("masters alone: /etc/passwd %q", got)
	}
}

func TestAccountsImageFilesComeFirst(t *testing.T) {
	// A package's own /etc/passwd (a [[file]]) is the base; base-passwd's
	// masters are then not read, as Debian copies them only when there is
	// no /etc/passwd.
	im := newFakeImage(t, map[string]string{
		passwdMasterPath: passwdMaster,
		groupMasterPath:  groupMaster,
	}, map[string]string{
		"/etc/passwd": "root:x:0:0::/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n",
		"/etc/group":  "root:x:0:\nnogroup:x:65534:\n",
		"/etc/shadow": "root:$6$salt$hash:19000:0:99999:7:::\n",
	})
	tr, _ := im.mustSetup(&spec.Accounts{Users: []spec.User{{Name: "app", UID: 200, GID: uid(65534)}}})
	want := "root:x:0:0::/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\napp:x:200:65534::/nonexistent:/usr/sbin/nologin\n"
	if got := content(t, tr, "/etc/passwd"); got != want {
		t.Errorf("/etc/passwd:\n%s\nwant:\n%s", got, want)
	}
	// The image's own shadow line is kept as it is.
	if got, want := content(t, tr, "/etc/shadow"), "root:$6$salt$hash:19000:0:99999:7:::\nsshd:*:::::::\napp:*:::::::\n"; got != want {
		t.Errorf("/etc/shadow:\n%s\nwant:\n%s", got, want)
	}

	// Nothing to add: no layer at all, the image's files stay as they are.
	if tr, _, err := im.setup(nil); err != nil || tr != nil {
		t.Errorf("nothing to do: layer %v, %v", tr, err)
	}
}

func TestAccountsConflicts(t *testing.T) {
	base := map[string]string{passwdMasterPath: passwdMaster, groupMasterPath: groupMaster}
	for _, c := range []struct {
		accs spec.Accounts
		want string
	}{
		{spec.Accounts{Users: []spec.User{{Name: "www-data", UID: 1000}}},
			`/pkg/package.toml [[accounts.user]] www-data: uid 1000, but /usr/share/base-passwd/passwd.master (base-passwd) has user "www-data" as uid 33: use uid = 33, or another name`},
		{spec.Accounts{Users: []spec.User{{Name: "web", UID: 33, GID: uid(33)}}},
			`/pkg/package.toml [[accounts.user]] web: uid 33 of user "web" is already user "www-data"'s (/usr/share/base-passwd/passwd.master (base-passwd))`},
		{spec.Accounts{Groups: []spec.Group{{Name: "adm", GID: 5}}},
			`/pkg/package.toml [[accounts.group]] adm: gid 5, but /usr/share/base-passwd/group.master (base-passwd) has group "adm" as gid 4: use gid = 4, or another name`},
		{spec.Accounts{Groups: []spec.Group{{Name: "admins", GID: 4}}},
			`/pkg/package.toml [[accounts.group]] admins: gid 4 of group "admins" is already group "adm"'s (/usr/share/base-passwd/group.master (base-passwd))`},
		{spec.Accounts{Users: []spec.User{{Name: "web", UID: 42}}},
			`/pkg/package.toml [[accounts.user]] web: its group "web" would take gid 42 (its uid), which is already group "shadow"'s (/usr/share/base-passwd/group.master (base-passwd)): add [[accounts.group]] web with a free gid, or set the user's gid`},
		{spec.Accounts{Users: []spec.User{{Name: "web", UID: 1000, Groups: []string{"wheel"}}}},
			`/pkg/package.toml [[accounts.user]] web: groups: no group "wheel" in [[accounts.group]], the image's /etc/group or sysusers.d: declare it with [[accounts.group]]`},
	} {
		_, _, err := newFakeImage(t, base).setup(&c.accs)
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v:\n got %v\nwant %s", c.accs, err, c.want)
		}
	}
	// A malformed passwd in the image is refused, naming the line.
	_, _, err := newFakeImage(t, map[string]string{"/etc/passwd": "root:x:0:0::/root:/bin/sh\nbad:x:zero:0::/:/bin/sh\n"}).
		setup(&spec.Accounts{Users: []spec.User{{Name: "a", UID: 1}}})
	if err == nil || err.Error() != `/etc/passwd:2: uid: "zero" is not a numeric id` {
		t.Errorf("malformed passwd: %v", err)
	}
}

// TestAccountsLayerIsDeterministic builds a package with [accounts],
// sysusers.d and tmpfiles.d twice, in two caches: the same digest.
func TestAccountsLayerIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"sysusers.conf": "u svc - \"Service\"\ng extra -\nm svc extra\n",
		"tmpfiles.conf": "d /var/lib/svc 0750 svc svc -\nf /var/log/svc.log 0640 svc adm - started\\n\nL /var/run - - - - ../run\nd /var/run/svc 0755 svc - -\n",
		"package.toml": `name = "svc"

[[file]]
path = "/usr/lib/sysusers.d/svc.conf"
source = "sysusers.conf"

[[file]]
path = "/usr/lib/tmpfiles.d/svc.conf"
source = "tmpfiles.conf"

[[accounts.group]]
name = "adm"
gid = 4

[[accounts.user]]
name = "web"
uid = 33
home = "/var/www"
groups = ["adm"]
`,
	})
	ctx := context.Background()
	var digests []string
	for range 2 {
		rec := &recorder{}
		r, err := (&Builder{Cache: newCache(t), Progress: rec.add}).BuildResult(ctx, dir, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		d, err := r.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
		files := layerFiles(t, r.Image)
		if p := string(files["/etc/passwd"].data); !strings.Contains(p, "web:x:33:33::/var/www:/usr/sbin/nologin\n") || !strings.Contains(p, ":Service:/:/usr/sbin/nologin\n") {
			t.Errorf("/etc/passwd:\n%s", p)
		}
		if f := files["/var/run/svc"]; f.hdr != nil {
			t.Errorf("/var/run/svc is in the image as %q: the link /var/run was not followed", f.hdr.Name)
		}
		if f := files["/run/svc"]; f.hdr == nil || f.hdr.Typeflag != '5' {
			t.Errorf("/run/svc: %+v", f.hdr)
		}
		if f := files["/var/log/svc.log"]; string(f.data) != "started\n" || f.hdr.Gid != 4 || f.hdr.Mode&0o777 != 0o640 {
			t.Errorf("/var/log/svc.log: %q gid %d mode %o", f.data, f.hdr.Gid, f.hdr.Mode)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds: %s and %s", digests[0], digests[1])
	}
}
