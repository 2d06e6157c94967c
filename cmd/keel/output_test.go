package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/testenv"
)

// TestBuildOutputNeedsOneFile checks that -o is refused, as bad usage
// naming why, for a build that would write more than one image file.
func TestBuildOutputNeedsOneFile(t *testing.T) {
	spec, err := filepath.Abs("../../examples/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "img")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", out}, "the build writes 2 formats (kernel+initrd, iso-efi): choose one with --format"},
		{[]string{"-o", "-", "--format", "tar,uki"}, "the build writes 2 formats (tar, uki)"},
		{[]string{"-o", "-", "--format", "kernel+initrd"}, "format kernel+initrd writes 3 (NAME-ARCH-kernel, NAME-ARCH-initrd.img, NAME-ARCH-cmdline): write them with --dir"},
		{[]string{"-o", out, "--format", "tar", "--arch", "amd64,arm64"}, "the build is for 2 architectures (amd64, arm64): choose one with --arch"},
		{[]string{"-o", "-", "--dry-run"}, "-o -: --dry-run writes no image"},
		{[]string{"-o", out, "--format", "tar", "--dir", t.TempDir()}, "names the output: not with --dir"},
	} {
		code, stdout, stderr := keel(t, append([]string{"--cache", t.TempDir(), "build", spec}, tc.args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s written by a refused build (%v)", out, err)
	}
}

// TestBuildOutputWritesOneImageRealMirror checks that -o FILE and -o -
// write the bytes --dir writes, stdout holding nothing but the image,
// and that a failed build leaves the file -o names as it was.
func TestBuildOutputWritesOneImageRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	spec, err := filepath.Abs("../../examples/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"build", "--format", "tar", spec}
	files, _ := buildOutputs(t, args...)
	want := files["minimal-"+runtime.GOARCH+".tar"]
	if len(want) == 0 {
		t.Fatalf("--dir build wrote %d files, no tar", len(files))
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "img.tar")
	code, stdout, stderr := keel(t, append(args, "-o", out)...)
	if code != 0 {
		t.Fatalf("-o %s: exit %d: %s", out, code, stderr)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, want) {
		t.Errorf("-o %s: %d bytes (%v), want the %d of --dir", out, len(got), err, len(want))
	}
	if stdout != out+"\n" {
		t.Errorf("-o %s: stdout %q, want the file's name", out, stdout)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("-o %s left %d entries in its directory, want the image alone", out, len(entries))
	}

	code, stdout, stderr = keel(t, append(args, "-o", "-")...)
	if code != 0 {
		t.Fatalf("-o -: exit %d: %s", code, stderr)
	}
	if !bytes.Equal([]byte(stdout), want) {
		t.Errorf("-o -: stdout %d bytes, want the image's %d", len(stdout), len(want))
	}

	// A build that fails half way (a service image no registry serves)
	// leaves the previous image byte-identical.
	bad := writeFile(t, t.TempDir(), "bad.toml", "[[service]]\nname = \"gone\"\nimage = \"127.0.0.1:1/gone:1\"\n")
	if code, _, stderr := keel(t, "build", "--format", "tar", spec, bad, "-o", out); code == 0 || !strings.Contains(stderr, "gone") {
		t.Fatalf("a build with an image no registry serves: exit %d: %s", code, stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Errorf("a failed build changed %s", out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a failed -o build left %d entries in %s, want the image alone", len(entries), dir)
	}
}
