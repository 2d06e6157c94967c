package debian

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeApt(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMirrorFromAptDir(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{{
		name: "deb822, security listed first",
		files: map[string]string{"sources.list.d/debian.sources": `Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example.org/debian
Suites: bookworm

Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Enabled: no

# the archive
Types: deb deb-src
URIs: https://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`},
		want: "https://mirror.example.org/debian",
	}, {
		name: "one-line with options, third-party and security first",
		files: map[string]string{"sources.list": `# comment
deb-src http://src.example.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] https://repo.example.com/node nodistro main
deb http://security.example.org/debian-security bookworm-security main
deb [ arch=amd64 ] http://ftp.example.org/debian trixie main contrib # trailing
`},
		want: "http://ftp.example.org/debian",
	}, {
		name: "sources.list comes before sources.list.d",
		files: map[string]string{
			"sources.list":                "deb http://first.example.org/debian bookworm main\n",
			"sources.list.d/a.list":       "deb http://second.example.org/debian bookworm main\n",
			"sources.list.d/z.sources":    "Types: deb\nURIs: http://third.example.org/debian\nSuites: bookworm\n",
			"sources.list.d/x.list.saved": "deb http://ignored.example.org/debian bookworm main\n",
		},
		want: "http://first.example.org/debian",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mirrorFromAptDir(writeApt(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMirrorFromAptDirNone(t *testing.T) {
	dir := writeApt(t, map[string]string{
		"sources.list": "deb http://security.example.org/debian-security bookworm-security main\n",
	})
	_, err := mirrorFromAptDir(dir)
	if err == nil || !strings.Contains(err.Error(), MirrorEnv) {
		t.Fatalf("want an error naming %s, got %v", MirrorEnv, err)
	}
}

func TestMirrorFromHostEnv(t *testing.T) {
	t.Setenv(MirrorEnv, "http://env.example.org/debian/")
	got, err := MirrorFromHost()
	if err != nil || got != "http://env.example.org/debian" {
		t.Fatalf("got %q, %v", got, err)
	}
}
