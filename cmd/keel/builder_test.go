package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A package with [build] steps and no builder to solve them fails (exit
// 1) saying how to start one; a package without [build] builds with the
// same dead address, since it never contacts a builder.
func TestPkgBuildWithoutBuilderSaysHowToStartOne(t *testing.T) {
	dir := t.TempDir()
	steps := filepath.Join(dir, "steps")
	plain := filepath.Join(dir, "plain")
	for _, d := range []string{steps, plain} {
		if err := mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, steps, "data", "x\n")
	writeFile(t, steps, "package.toml", "name = \"steps\"\n\n[build]\nfrom = \"scratch\"\n\n[[build.step]]\ncopy = \"data\"\nto = \"/data\"\n")
	writeFile(t, plain, "package.toml", "name = \"plain\"\n\n[[file]]\npath = \"/etc/motd\"\ncontents = \"hi\\n\"\n")
	dead := "unix://" + filepath.Join(dir, "no-buildkitd.sock")
	cache := t.TempDir()

	code, stdout, stderr := keel(t, "--cache", cache, "pkg", "build", "--builder", dead, "--arch", "amd64", steps)
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"no BuildKit builder reachable at " + dead, "buildkitd --addr unix://", "KEEL_BUILDKIT_HOST", "--builder"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	t.Setenv("KEEL_BUILDKIT_HOST", dead)
	code, stdout, stderr = keel(t, "--cache", cache, "pkg", "build", "--arch", "amd64,arm64", plain)
	if code != 0 || !strings.Contains(stdout, "\tamd64\t") || !strings.Contains(stdout, "\tamd64,arm64\tsha256:") || !strings.Contains(stdout, "index plain:") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	if code, _, stderr := keel(t, "--cache", cache, "pkg", "build", "--progress", "fancy", plain); code != 2 || !strings.Contains(stderr, "--progress") {
		t.Errorf("bad --progress: exit %d, stderr %s", code, stderr)
	}
}

func mkdir(d string) error { return os.MkdirAll(d, 0o755) }
