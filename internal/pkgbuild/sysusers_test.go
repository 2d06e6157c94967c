package pkgbuild

import (
	"reflect"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/spec"
)

func TestSplitFields(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want []string
		tail string
	}{
		{`u  svc   -  "A \"quoted\" name"   /var/lib/svc`, 6, []string{"u", "svc", "-", `A "quoted" name`, "/var/lib/svc"}, ""},
		{`u x 'it''s' a\x20b`, 6, []string{"u", "x", "its", "a b"}, ""},
		{"f /etc/motd 0644 - - - hello  world\\n", 6, []string{"f", "/etc/motd", "0644", "-", "-", "-"}, "hello  world\\n"},
		{"d\t/run/x", 6, []string{"d", "/run/x"}, ""},
	} {
		got, tail, err := splitFields(c.in, c.n, true)
		if err != nil || !reflect.DeepEqual(got, c.want) || tail != c.tail {
			t.Errorf("splitFields(%q) = %q, %q, %v; want %q, %q", c.in, got, tail, err, c.want, c.tail)
		}
	}
	for _, bad := range []string{`u "unterminated`, `u a\q`, `u a\`} {
		if _, _, err := splitFields(bad, 6, false); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	if _, _, err := splitFields("u a b c d e f", 6, false); err == nil {
		t.Error("a seventh field was accepted")
	}
}

func TestSysusersParseErrors(t *testing.T) {
	for line, want := range map[string]string{
		"x name":                 `unknown line type "x" (u, g, m or r)`,
		"uu name":                `unknown line type "uu" (u, g, m or r)`,
		"u":                      "want TYPE NAME [ID [GECOS [HOME [SHELL]]]]",
		"u 0bad":                 `"0bad" is not a valid user or group name (letters, digits, '_' and '-', starting with a letter or '_')`,
		"g grp 5:5":              `a group's ID is a number, a path or "-", not "5:5"`,
		"u svc - a:b":            `GECOS: "a:b" holds ":", which /etc/passwd cannot`,
		"u svc - - var/lib":      `"var/lib" is not an absolute clean path`,
		"m svc bad/group":        `group: "bad/group" is not a valid user or group name (letters, digits, '_' and '-', starting with a letter or '_')`,
		"u svc 4294967295":       `ID: 4294967295 is (uid_t)-1, which means "no id" to the kernel`,
		"g grp 12x":              `ID: "12x" is not a numeric id`,
		"u svc - - - - too-many": "more than 6 fields",
	} {
		_, _, err := parseSysusers(confFile{path: "/usr/lib/sysusers.d/x.conf", data: []byte("# comment\n\n" + line + "\n")}, "amd64")
		if err == nil || !strings.HasPrefix(err.Error(), "/usr/lib/sysusers.d/x.conf:3: ") {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if got := strings.TrimPrefix(err.Error(), "/usr/lib/sysusers.d/x.conf:3: "); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

// TestSysusersApply checks users, groups and memberships made from
// sysusers.d: fixed ids, ids from a file's owner, automatic ids, the
// group of a user's name, precedence between directories and masking.
func TestSysusersApply(t *testing.T) {
	im := newFakeImage(t, map[string]string{
		"/usr/lib/sysusers.d/basic.conf": `# Debian's style
g adm        4     -
g shadow     42    -
u root       0     "Super User" /root
u www-data   33    -        /var/www
u sync       4:65534 - /bin /bin/sync
g nogroup    65534 -
`,
		"/usr/lib/sysusers.d/svc.conf":   "u svc - \"Service daemon\" /var/lib/svc\nm svc adm\nm svc journal\nr - 500-900\n",
		"/usr/lib/sysusers.d/owner.conf": "u owner /usr/bin/owned\ng gowner /usr/bin/owned\n",
		"/usr/bin/owned":                 "x",
		// /etc hides /usr/lib's file of the same name; a link to /dev/null masks it.
		"/usr/lib/sysusers.d/site.conf": "u fromlib 2000\n",
		"/etc/sysusers.d/site.conf":     "u frometc 2001\n",
		"/usr/lib/sysusers.d/gone.conf": "u gone 2002\n",
		"/etc/sysusers.d/gone.conf":     "link:/dev/null",
	})
	owned := im.parts[0].tree
	e, _ := owned.Get("/usr/bin/owned")
	e.UID, e.GID = 321, 654
	tr, skipped := im.mustSetup(nil)
	wantPasswd := `root:x:0:0:Super User:/root:/bin/sh
www-data:x:33:33::/var/www:/usr/sbin/nologin
sync:x:4:65534::/bin:/bin/sync
owner:x:321:321::/:/usr/sbin/nologin
frometc:x:2001:2001::/:/usr/sbin/nologin
svc:x:941:941:Service daemon:/var/lib/svc:/usr/sbin/nologin
`
	wantGroup := `adm:x:4:svc
shadow:x:42:
nogroup:x:65534:
gowner:x:654:
root:x:0:
www-data:x:33:
owner:x:321:
frometc:x:2001:
svc:x:941:
journal:x:388:svc
`
	if got := content(t, tr, "/etc/passwd"); got != wantPasswd {
		t.Errorf("/etc/passwd:\n%s\nwant:\n%s", got, wantPasswd)
	}
	if got := content(t, tr, "/etc/group"); got != wantGroup {
		t.Errorf("/etc/group:\n%s\nwant:\n%s", got, wantGroup)
	}
	if got := meta(t, tr, "/etc/shadow"); got != "-0640 0:42" {
		t.Errorf("/etc/shadow %s, want root:shadow 0640", got)
	}
	// sysusers.d sets a home in the database only; tmpfiles.d makes it.
	if got := meta(t, tr, "/var/lib/svc"); got != "missing" {
		t.Errorf("/var/lib/svc: %s", got)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), "svc.conf:4: not applied at build time: r: keel takes automatic ids from 100-999, by name") {
		t.Errorf("skipped: %v", skipped)
	}
}

// TestSysusersAutomaticIDsAreStable checks that an automatic id depends
// on the name, not on the other users of the image.
func TestSysusersAutomaticIDsAreStable(t *testing.T) {
	passwdOf := func(conf string) string {
		im := newFakeImage(t, map[string]string{"/usr/lib/sysusers.d/a.conf": conf})
		tr, _ := im.mustSetup(nil)
		return content(t, tr, "/etc/passwd")
	}
	alone := passwdOf("u svc -\n")
	if !strings.Contains(alone, "svc:x:941:941::/:/usr/sbin/nologin\n") {
		t.Fatalf("svc alone:\n%s", alone)
	}
	with := passwdOf("u aaa -\nu zzz -\nu mmm -\nu svc -\n")
	if !strings.Contains(with, "svc:x:941:941:") {
		t.Errorf("svc among others:\n%s", with)
	}
	// An id taken already moves the user to the next free one.
	taken := passwdOf("u other 941\nu svc -\n")
	if !strings.Contains(taken, "svc:x:942:942:") {
		t.Errorf("svc with 941 taken:\n%s", taken)
	}
	// A group of the user's name lends its gid.
	grp := passwdOf("g svc 500\nu svc -\n")
	if !strings.Contains(grp, "svc:x:500:500:") {
		t.Errorf("svc with its group at 500:\n%s", grp)
	}
}

func TestSysusersAfterAccounts(t *testing.T) {
	// [accounts] comes first: sysusers.d leaves a user it declares alone.
	im := newFakeImage(t, map[string]string{"/usr/lib/sysusers.d/web.conf": "u www-data 33 - /var/www\nu web -\n"})
	tr, _ := im.mustSetup(&spec.Accounts{Users: []spec.User{{Name: "web", UID: 1000, Home: "/srv"}}})
	if got, want := content(t, tr, "/etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/srv:/usr/sbin/nologin\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n"; got != want {
		t.Errorf("/etc/passwd:\n%s\nwant:\n%s", got, want)
	}
	// A fixed id another name holds is refused, with the way out.
	im = newFakeImage(t, map[string]string{"/usr/lib/sysusers.d/web.conf": "\nu www-data 1000\n"})
	_, _, err := im.setup(&spec.Accounts{Users: []spec.User{{Name: "web", UID: 1000}}})
	want := `/usr/lib/sysusers.d/web.conf:2: /usr/lib/sysusers.d/web.conf:2: uid 1000 of user "www-data" is already user "web"'s (/pkg/package.toml [[accounts.user]] web) (declare the account in the package's [accounts], which comes first, or leave the file out of the image: for a Debian package's, [debian] paths-exclude = ["/usr/lib/sysusers.d/web.conf"])`
	if err == nil || err.Error() != want {
		t.Errorf("conflict:\n got %v\nwant %s", err, want)
	}
}
