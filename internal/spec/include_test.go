package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const linksTOML = `# shared links
[[file]]
path = "/bin/sh"
symlink = "busybox"

[[file]]
path = "/etc/shared"
source = "shared.txt"
`

func TestIncludeAddsFilesAfterThePackagesOwn(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "getty")
	shared := filepath.Join(root, "busybox")
	for _, d := range []string{dir, shared} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, shared, "links.toml", linksTOML)
	write(t, dir, "package.toml", `name = "getty"
include = ["../busybox/links.toml"]

[[file]]
path = "/etc/motd"
contents = "hi"
`)
	pk, err := LoadPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range pk.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "/etc/motd /bin/sh /etc/shared" {
		t.Fatalf("files %s", got)
	}
	if f := pk.Files[2]; f.SourcePath() != filepath.Join(shared, "shared.txt") || f.Origin != filepath.Join(shared, "links.toml") {
		t.Errorf("an included source is relative to its own file: %q, origin %q", f.SourcePath(), f.Origin)
	}
	if f := pk.Files[0]; f.Dir != dir {
		t.Errorf("the package's own file: dir %q", f.Dir)
	}
}

func TestIncludeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, include, links, want string
	}{
		{"missing", `["nothere.toml"]`, "", "include: nothere.toml: cannot read"},
		{"absolute", `["/etc/links.toml"]`, "", "relative to the package directory"},
		{"not toml", `["links.txt"]`, "", "a .toml file of [[file]] entries"},
		{"twice", `["links.toml", "links.toml"]`, "[[file]]\npath = \"/bin/sh\"\nsymlink = \"busybox\"\n", "included twice"},
		{"other keys", `["links.toml"]`, "name = \"x\"\n", "links.toml:1:1: name: unknown key"},
		{"bad entry", `["links.toml"]`, "[[file]]\npath = \"bin/sh\"\nsymlink = \"busybox\"\n", "links.toml:2:8: file[bin/sh].path"},
		{"duplicate", `["links.toml"]`, "[[file]]\npath = \"/etc/motd\"\nsymlink = \"x\"\n", `duplicate file "/etc/motd" (also in `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.links != "" {
				write(t, dir, "links.toml", tc.links)
			}
			write(t, dir, "package.toml", "name = \"p\"\ninclude = "+tc.include+"\n\n[[file]]\npath = \"/etc/motd\"\ncontents = \"hi\"\n")
			_, err := LoadPackage(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
