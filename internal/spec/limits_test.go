package spec

import (
	"strings"
	"testing"
)

// Names and paths that the kernel would refuse as file names are refused
// when the spec is read, not when the image is written or booted.
func TestLengthLimits(t *testing.T) {
	name := func(n int) string { return strings.Repeat("a", n) }
	// path is an absolute path of n bytes, of components of at most 200.
	path := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString("/" + strings.Repeat("p", min(200, n-b.Len()-1)))
		}
		return b.String()
	}
	file := func(p string) string { return kernel + "[[file]]\npath = \"" + p + "\"\ncontents = \"\"\n" }
	cases := []struct {
		what, doc, want string // want: "" = accepted, else the only error's message
	}{
		{"spec name", "name = \"" + name(63) + "\"\n" + kernel, ""},
		{"spec name", "name = \"" + name(64) + "\"\n" + kernel, `"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"… is too long for a name (64 characters; at most 63)`},
		{"container name", kernel + "[[service]]\nname = \"" + name(64) + "\"\nimage = \"./a\"\n", "too long for a name (64 characters; at most 63)"},
		{"volume name", kernel + "[[volume]]\nname = \"" + name(1000) + "\"\nsize = \"1M\"\n", "too long for a name (1000 characters; at most 63)"},
		{"path component", file("/etc/" + name(255)), ""},
		{"path component", file("/etc/" + name(256) + "/x"), "has a name too long (256 bytes; at most 255)"},
		{"path", file(path(4095)), ""},
		{"path", file(path(4096)), "is too long (4096 bytes; at most 4095)"},
		{"NUL", file("/etc/a\\u0000b"), "holds a NUL byte"},
		{"cwd", service("cwd = \"/" + name(300) + "\"\n"), "has a name too long (300 bytes; at most 255)"},
		{"hostname", service("hostname = \"" + name(30) + "." + name(33) + "\"\n"), ""},
		{"hostname", service("hostname = \"" + name(30) + "." + name(34) + "\"\n"), "is not a valid host name (at most 64 characters"},
	}
	for _, c := range cases {
		_, err := Parse("limits.toml", []byte(c.doc))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.what, err)
		case c.want == "":
		case err == nil:
			t.Errorf("%s: accepted, want %q", c.what, c.want)
		default:
			es := err.(Errors)
			if len(es) != 1 || !strings.Contains(es[0].Msg, c.want) {
				t.Errorf("%s: %v\nwant one error with %q", c.what, err, c.want)
			}
		}
	}
	// keel build --name goes through CheckName.
	if err := CheckName(name(64)); err == nil || !strings.Contains(err.Error(), "at most 63") {
		t.Errorf("CheckName: %v", err)
	}
}
