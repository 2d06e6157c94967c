package pkgbuild

import (
	"strings"
	"testing"
)

const tmpfilesAccounts = "g adm 4\nu www-data 33\nu svc 400\n"

// TestTmpfilesApply checks each line type keel applies at build time, in
// one image: what it creates, what it adjusts, what it leaves, and that
// the layer carries the parents of what it changes as the image has them.
func TestTmpfilesApply(t *testing.T) {
	im := newFakeImage(t, map[string]string{
		"/usr/lib/sysusers.d/acc.conf": tmpfilesAccounts,
		"/var/log/nginx":               "dir:",
		"/var/lib/shipped":             "dir:",
		"/var/lib/shipped/data":        "payload",
		"/var/lib/shipped/sub":         "dir:",
		"/var/lib/shipped/sub/file":    "x",
		"/etc/existing.conf":           "old",
		"/etc/kept.conf":               "keep me",
		"/usr/share/factory/etc/issue": "factory issue\n",
		"/usr/share/skel":              "dir:",
		"/usr/share/skel/.profile":     "PS1=$\n",
		"/var":                         "dir:",
		"/var/run":                     "link:/run",
		"/srv/masked":                  "plain",
	}, map[string]string{
		"/usr/lib/tmpfiles.d/test.conf": `# every kind keel applies
d     /var/lib/nginx            0750 www-data adm -
d     /var/log/nginx            0755 root     adm 10d
D     /tmp                      1777 root     root -
d!    /var/run/nginx            0755 www-data -   -
f     /etc/motd                 0644 -        -   -   Welcome to\x20keel\n
f     /etc/kept.conf            0600 -        -   -   ignored, the file exists
f+    /etc/existing.conf        -    -        -   -   new
F     /etc/truncated            0640 svc      -
L     /etc/mtab                 -    -        -   -   ../proc/self/mounts
L     /etc/issue
L+    /etc/existing.conf.lnk    -    -        -   -   existing.conf
p     /run/fifo                 0600 svc      svc
C     /etc/skel                 -    -        -   -   /usr/share/skel
C     /etc/nosource             -    -        -   -   /usr/share/nothing
z     /var/lib/shipped          0700 svc      -
Z     /var/lib/shipped/sub      ~0660 svc     svc
e     /var/log/nginx            -    www-data -
e     /var/nothing              0700 -        -
z     /srv/masked               ~0775 -       -
d     /run/app                  :0700 :svc    -
d     /var/lib/nginx            0700 root     root -
`,
		"/usr/lib/tmpfiles.d/skip.conf": `d /dev/shm/x 0755 - -
w /proc/sys/vm/swappiness - - - - 10
a+ /var/log/journal - - - - group:adm:r-x
r! /forcefsck
c /dev/null2 0666 - - - 1:3
d /var/log/journal/%m 2755 root - -
f^ /etc/hosts - - - - network.hosts
d- /var/lib/bad 0755 nouser - -
`,
	})
	tr, skipped := im.mustSetup(nil)
	for p, want := range map[string]string{
		"/var/lib/nginx":            "d0750 33:4",
		"/var/log/nginx":            "d0755 33:4", // d then e adjust the shipped directory
		"/tmp":                      "d1777 0:0",
		"/run/nginx":                "d0755 33:0", // through the /var/run link
		"/var/run":                  "missing",    // the link itself is not rewritten
		"/etc/motd":                 "-0644 0:0",
		"/etc/kept.conf":            "-0600 0:0",
		"/etc/existing.conf":        "-0644 0:0",
		"/etc/truncated":            "-0640 400:0",
		"/etc/mtab":                 "l0777 0:0 -> ../proc/self/mounts",
		"/etc/issue":                "l0777 0:0 -> /usr/share/factory/etc/issue",
		"/etc/existing.conf.lnk":    "l0777 0:0 -> existing.conf",
		"/run/fifo":                 "p0600 400:400",
		"/etc/skel":                 "d0755 0:0",
		"/etc/skel/.profile":        "-0644 0:0",
		"/etc/nosource":             "missing",
		"/var/lib/shipped":          "d0700 400:0",
		"/var/lib/shipped/data":     "missing", // z is not recursive
		"/var/lib/shipped/sub":      "d0660 400:400",
		"/var/lib/shipped/sub/file": "-0660 400:400",
		"/var/nothing":              "missing",
		"/srv/masked":               "-0664 0:0", // ~: no x bit where the file had none
		"/run/app":                  "d0700 400:0",
		"/var/lib":                  "d0755 0:0", // a parent, as the image has it
		"/dev/shm/x":                "missing",
		"/var/lib/bad":              "missing",
	} {
		if got := meta(t, tr, p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	for p, want := range map[string]string{
		"/etc/motd":          "Welcome to keel\n",
		"/etc/existing.conf": "new",
		"/etc/truncated":     "",
		"/etc/skel/.profile": "PS1=$\n",
	} {
		if got := content(t, tr, p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	if _, ok := tr.Get("/etc/kept.conf"); ok && content(t, tr, "/etc/kept.conf") != "keep me" {
		t.Error("f rewrote an existing file")
	}
	var got []string
	for _, s := range skipped {
		got = append(got, s.Error())
	}
	want := []string{
		"/usr/lib/tmpfiles.d/skip.conf:1: d /dev/shm/x: not applied at build time: /dev is a kernel file system mounted at run time",
		"/usr/lib/tmpfiles.d/skip.conf:2: w /proc/sys/vm/swappiness: not applied at build time: w writes into a file of the running machine",
		"/usr/lib/tmpfiles.d/skip.conf:3: a+ /var/log/journal: not applied at build time: extended attributes, file attributes and ACLs are not set at build time",
		"/usr/lib/tmpfiles.d/skip.conf:4: r! /forcefsck: not applied at build time: keel removes and cleans nothing: each boot starts from the image",
		"/usr/lib/tmpfiles.d/skip.conf:5: c /dev/null2: not applied at build time: device nodes come from the container's devices",
		"/usr/lib/tmpfiles.d/skip.conf:6: d /var/log/journal/%m: not applied at build time: %m is known only on the running machine",
		"/usr/lib/tmpfiles.d/skip.conf:7: f^ /etc/hosts: not applied at build time: ^: the contents come from a credential of the running machine",
		"/usr/lib/tmpfiles.d/test.conf:15: /etc/nosource: not applied at build time: no source /usr/share/nothing in the image",
		`/usr/lib/tmpfiles.d/skip.conf:8: /var/lib/bad: no user "nouser"`, // d- tolerates its error
		"/usr/lib/tmpfiles.d/test.conf:22: /var/lib/nginx: not applied at build time: /usr/lib/tmpfiles.d/test.conf:2 already set it",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTmpfilesErrors(t *testing.T) {
	for conf, want := range map[string]string{
		"d /var/lib/x 0755 nobody - -\n": `/usr/lib/tmpfiles.d/t.conf:1: /var/lib/x: no user "nobody" (fix the package, or leave the file out of the image: for a Debian package's, [debian] paths-exclude = ["/usr/lib/tmpfiles.d/t.conf"])`,
		"d /etc/file 0755 - - -\n":       `/usr/lib/tmpfiles.d/t.conf:1: /etc/file: exists and is not a directory (a regular file) (fix the package, or leave the file out of the image: for a Debian package's, [debian] paths-exclude = ["/usr/lib/tmpfiles.d/t.conf"])`,
		"d relative\n":                   `/usr/lib/tmpfiles.d/t.conf:1: "relative" is not an absolute path`,
		"d /x 0999\n":                    `/usr/lib/tmpfiles.d/t.conf:1: "0999" is not an octal mode`,
		"y /x\n":                         `/usr/lib/tmpfiles.d/t.conf:1: unknown line type "y"`,
		"d? /x\n":                        `/usr/lib/tmpfiles.d/t.conf:1: unknown modifier '?' in line type "d?"`,
		"d\n":                            `/usr/lib/tmpfiles.d/t.conf:1: want TYPE PATH [MODE [USER [GROUP [AGE [ARGUMENT]]]]]`,
		"f~ /x - - - - !!\n":             `/usr/lib/tmpfiles.d/t.conf:1: ~: the argument is not base64: illegal base64 data at input byte 0`,
		"f /x - - - - \\q\n":             `/usr/lib/tmpfiles.d/t.conf:1: unknown escape "\\q"`,
	} {
		im := newFakeImage(t, map[string]string{"/usr/lib/tmpfiles.d/t.conf": conf, "/etc/file": "x"})
		_, _, err := im.setup(nil)
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", conf, err, want)
		}
	}
	// "=" replaces an object of the wrong type; base64 contents with "~".
	im := newFakeImage(t, map[string]string{"/usr/lib/tmpfiles.d/t.conf": "d= /etc/file 0700\nf~ /etc/b64 - - - - aGkK\n", "/etc/file": "x"})
	tr, _ := im.mustSetup(nil)
	if got := meta(t, tr, "/etc/file"); got != "d0700 0:0" {
		t.Errorf("d= over a file: %s", got)
	}
	if got := content(t, tr, "/etc/b64"); got != "hi\n" {
		t.Errorf("f~: %q", got)
	}
}

func TestTmpfilesPrecedenceAndSpecifiers(t *testing.T) {
	im := newFakeImage(t, map[string]string{
		"/usr/lib/tmpfiles.d/a.conf": "d %S/app 0700 - - -\nL %t/arch - - - - %a\nd %C/%% 0755\n",
		"/etc/tmpfiles.d/a.conf":     "d %S/site 0750 - - -\n", // hides /usr/lib's a.conf
		"/usr/lib/tmpfiles.d/b.conf": "d %S/b 0711 - - -\nL %t/arch - - - - %a\n",
	})
	tr, _ := im.mustSetup(nil)
	for p, want := range map[string]string{
		"/var/lib/site": "d0750 0:0",
		"/var/lib/app":  "missing",
		"/var/lib/b":    "d0711 0:0",
		"/run/arch":     "l0777 0:0 -> x86-64",
		"/var/cache/%":  "missing",
	} {
		if got := meta(t, tr, p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
}
