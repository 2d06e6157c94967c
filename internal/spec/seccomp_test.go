package spec

import (
	"strings"
	"testing"
)

func TestSeccompValues(t *testing.T) {
	for _, c := range []struct{ value, want string }{
		{"default", ""},
		{"unconfined", ""},
		{"profiles/web.json", ""},
		{"web.json", ""},
		{"unconfied", `service[svc].seccomp: "unconfied" is not default, unconfined or the path of a .json profile; did you mean "unconfined"?`},
		{"/etc/profile.json", `service[svc].seccomp: "/etc/profile.json": a profile's path is relative to the spec file and stays inside its directory`},
		{"../up.json", `"../up.json": a profile's path is relative to the spec file`},
		{"a/../../up.json", `"a/../../up.json": a profile's path is relative to the spec file`},
	} {
		_, err := Parse("build.toml", []byte(service(`seccomp = "`+c.value+`"`)))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.value, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || len(errorLines(t, err)) != 1):
			t.Errorf("%q: err = %v, want only one containing %q", c.value, err, c.want)
		}
	}
}

func TestPackageSeccompIsAKeyword(t *testing.T) {
	for _, c := range []struct{ value, want string }{
		{"unconfined", ""},
		{"default", ""},
		{"mine.json", `config.seccomp: "mine.json": a package sets default or unconfined; a profile file is named by the spec's entry`},
	} {
		_, err := ParsePackage("package.toml", []byte("name = \"p\"\n\n[config]\nseccomp = \""+c.value+"\"\n"))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.value, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: err = %v, want one containing %q", c.value, err, c.want)
		}
	}
}

func TestUnconfinedLabelIsAPrivilege(t *testing.T) {
	for _, c := range []struct {
		label string
		entry Container
		want  string
	}{
		{`{"seccomp":"unconfined"}`, Container{}, `seccomp = "unconfined"`},
		{`{"seccomp":"unconfined"}`, Container{AllowImagePrivileges: []string{"seccomp"}}, ""},
		{`{"seccomp":"unconfined"}`, Container{Config: Config{Seccomp: ptr("default")}}, ""},
		{`{"seccomp":"default"}`, Container{}, ""},
	} {
		label, err := ParseLabel(labelOrigin, []byte(c.label))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range c.entry.RefusedImagePrivileges(label, ImageConfig{}) {
			got = append(got, s.String())
		}
		if g := strings.Join(got, "; "); g != c.want {
			t.Errorf("%s, entry %+v: refused %q, want %q", c.label, c.entry, g, c.want)
		}
	}
}
