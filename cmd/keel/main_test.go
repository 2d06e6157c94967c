package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelos/keel/internal/spec"
)

// keel runs one command line in-process and returns its exit code and
// output.
func keel(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const badSpec = `[kernel]
image = "./kernel"

[[service]]
name = "sshd"
image = "./pkg/sshd"
capabilites = ["CAP_NET_BIND_SERVICE"]

[[service]]
name = "ntpd"
image = "./pkg/ntpd"
capabilities = ["CAP_SYS_TMIE"]

[[service]]
name = "sshd"
image = "./pkg/sshd"
`

func TestBuildBadSpecExitsTwoWithEveryError(t *testing.T) {
	f := writeFile(t, t.TempDir(), "bad.toml", badSpec)
	for _, args := range [][]string{{"build", f}, {"build", "--dry-run", f}} {
		code, stdout, stderr := keel(t, append([]string{"--cache", t.TempDir()}, args...)...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr:\n%s", args, code, stderr)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q", args, stdout)
		}
		want := []string{
			f + `:7:1: service[sshd].capabilites: unknown key; did you mean "capabilities"?`,
			f + `:12:17: service[ntpd].capabilities: unknown capability "CAP_SYS_TMIE"; did you mean "CAP_SYS_TIME"?`,
			f + `:15:8: service[sshd].name: duplicate name "sshd" (first at line 5)`,
		}
		if got := strings.TrimSpace(stderr); got != strings.Join(want, "\n") {
			t.Errorf("%v: stderr:\n%s\nwant:\n%s", args, got, strings.Join(want, "\n"))
		}
	}
}

func TestBuildDryRunPrintsMergedSpec(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.toml", `name = "host"
arch = ["amd64"]

[kernel]
image = "./kernel/debian-cloud"

[[service]]
name = "sshd"
image = "./pkg/sshd"
`)
	b := writeFile(t, dir, "b.toml", `[kernel]
cmdline = "quiet"

[[service]]
name = "ntpd"
image = "./pkg/ntpd"
restart = "always"

[output]
formats = ["iso-efi"]
`)
	// Dry-run resolves the container images: two small local packages.
	for _, pkg := range []string{"sshd", "ntpd"} {
		if err := os.MkdirAll(filepath.Join(dir, "pkg", pkg), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "pkg", pkg), "package.toml", "name = \""+pkg+"\"\n\n[[file]]\npath = \"/usr/sbin/"+pkg+
			"\"\ncontents = \"\"\nmode = \"0755\"\n\n[config]\ncommand = [\"/usr/sbin/"+pkg+"\"]\n")
	}
	code, stdout, stderr := keel(t, "--cache", t.TempDir(), "build", "--dry-run", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `name = "host"
arch = ["amd64"]

[kernel]
image = "./kernel/debian-cloud"
cmdline = "quiet"

[[service]]
name = "sshd"
image = "./pkg/sshd"

[[service]]
name = "ntpd"
image = "./pkg/ntpd"
restart = "always"

[output]
formats = ["iso-efi"]
root = "initrd"
`
	if !strings.HasPrefix(stdout, want+"\n# Effective configuration") {
		t.Fatalf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	// Then, as comments, each container's effective configuration.
	for _, line := range []string{
		"# amd64 service \"sshd\": image \"./pkg/sshd\" (package directory; its label is trusted)\n",
		"#   command = [\"/usr/sbin/sshd\"]  # package [config]\n",
		"# amd64 service \"ntpd\": image \"./pkg/ntpd\" (package directory; its label is trusted)\n",
		"#   restart = \"always\"  # spec\n",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("missing %q in:\n%s", line, stdout)
		}
	}
	// The printed spec is itself a valid spec.
	if _, err := spec.Parse(filepath.Join(dir, "out.toml"), []byte(stdout)); err != nil {
		t.Fatal(err)
	}
}

func TestBuildDryRunAppliesFlags(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "build.toml", "[kernel]\nimage = \"./k\"\n")
	code, stdout, stderr := keel(t, "build", "--dry-run", "--arch", "arm64,amd64", "--format", "raw-efi", "--format", "iso,vmdk",
		"--name", "edge", "--size", "2GiB", f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range []string{`name = "edge"`, `arch = ["arm64", "amd64"]`, `formats = ["raw-efi", "iso", "vmdk"]`, `size = "2GiB"`} {
		if !strings.Contains(stdout, line+"\n") {
			t.Errorf("missing %s in:\n%s", line, stdout)
		}
	}
}

func TestBuildDefaultsToBuildToml(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "build.toml", "name = \"dflt\"\n[kernel]\nimage = \"./k\"\n")
	t.Chdir(dir)
	code, stdout, stderr := keel(t, "build", "--dry-run")
	if code != 0 || !strings.HasPrefix(stdout, "name = \"dflt\"\n") {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
}

func TestBadUsageExitsTwo(t *testing.T) {
	f := writeFile(t, t.TempDir(), "build.toml", "[kernel]\nimage = \"./k\"\n")
	for _, args := range [][]string{
		{"frobnicate"},
		{"build", "--no-such-flag"},
		{"build", "--dry-run", "--format", "qcow3", f},
		{"build", "--dry-run", "--arch", "riscv64", f},
		{"build", "--dry-run", "--name", "Bad Name", f},
		{"build", "--dry-run", "--size", "huge", f},
		{"run", "qemu", "--disk", "data.raw,size=lots", "x.raw"},
		{"run", "qemu", "--disk", "data.raw,size=0", "x.raw"},
		{"version", "extra"},
		// --arch is for the commands that build or boot for one.
		{"version", "--arch", "amd64"},
		{"completion", "bash", "--arch", "amd64"},
		{"inspect", "--arch", "amd64", f},
		{"cache", "ls", "--arch", "amd64"},
		{"completion", "tcsh"},
		{},
	} {
		if code, _, stderr := keel(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr: %s", args, code, stderr)
		}
	}
}

func TestArchFlagOnlyWhereUsed(t *testing.T) {
	for cmd, want := range map[string]bool{
		"build": true, "run qemu": true, "lock": true, "pkg build": true, "pkg push": true, "pkg show-tag": true,
		"version": false, "inspect": false, "completion": false, "cache ls": false, "convert linuxkit": false,
	} {
		code, stdout, stderr := keel(t, append(strings.Fields(cmd), "--help")...)
		if code != 0 {
			t.Errorf("%s --help: exit %d: %s", cmd, code, stderr)
		}
		if got := strings.Contains(stdout, "--arch "); got != want {
			t.Errorf("%s --help lists --arch: %v, want %v\n%s", cmd, got, want, stdout)
		}
	}
}

func TestVersionAndCompletion(t *testing.T) {
	code, stdout, _ := keel(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "keel ") {
		t.Fatalf("version: %d %q", code, stdout)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := keel(t, "completion", sh)
		if code != 0 || !strings.Contains(stdout, "keel") {
			t.Errorf("completion %s: exit %d, %d bytes, %s", sh, code, len(stdout), stderr)
		}
	}
}

// TestFlagValuesComplete asks cobra's completion command, as a shell
// would, for the values of --arch, --format and --accel.
func TestFlagValuesComplete(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"build", "--arch", ""}, []string{"amd64", "arm64"}},
		{[]string{"build", "--arch", "amd64,"}, []string{"amd64,arm64"}},
		{[]string{"lock", "--arch", ""}, []string{"amd64", "arm64"}},
		{[]string{"build", "--format", "iso"}, []string{"iso-efi\t"}},
		{[]string{"run", "qemu", "--accel", ""}, []string{"kvm", "tcg"}},
	} {
		code, stdout, stderr := keel(t, append([]string{"__complete"}, tc.args...)...)
		if code != 0 {
			t.Errorf("%q: exit %d: %s", tc.args, code, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%q: completions %q lack %q", tc.args, stdout, w)
			}
		}
	}
}

func TestExitCodes(t *testing.T) {
	for err, want := range map[error]int{
		nil:                           0,
		errors.New("qemu died"):       1,
		usageError(errors.New("bad")): 2,
		fmt.Errorf("wrapped: %w", usageError(errors.New("bad"))):   2,
		fmt.Errorf("load: %w", spec.Errors{{File: "a", Msg: "x"}}): 2,
	} {
		if got := exitCode(err); got != want {
			t.Errorf("exitCode(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestVerbosityLevels(t *testing.T) {
	for v, want := range map[int]string{0: "WARN", 1: "INFO", 2: "DEBUG"} {
		var buf bytes.Buffer
		g := globalFlags{Verbose: v}
		l := g.logger(&buf)
		l.Debug("d")
		l.Info("i")
		l.Warn("w")
		first, _, _ := strings.Cut(buf.String(), "\n")
		if !strings.Contains(first, "level="+want) {
			t.Errorf("-v×%d: first line %q, want level %s", v, first, want)
		}
	}
}

// A command whose context a signal cancelled exits with 128 plus the
// signal's number and says it was interrupted, not what failed because of
// it.
func TestInterruptedExitCodes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "motd", "hello\n")
	f := writeFile(t, dir, "build.toml", "[kernel]\nimage = \"./k\"\n\n[[file]]\npath = \"/etc/motd\"\nsource = \"motd\"\n")
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(interrupted{sig})
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"--cache", t.TempDir(), "build", "--dir", filepath.Join(dir, "out"), f}, &out, &errOut)
		if code != want {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", sig, code, want, errOut.String())
		}
		if got := errOut.String(); !strings.HasSuffix(got, "keel: interrupted by "+signalName(sig)+"\n") {
			t.Errorf("%v: stderr %q", sig, got)
		}
	}
}

// The zone file of --verify-reproducible's second build is read as the
// same zone by Go and by the C library (date(1)).
func TestRebuildZoneFile(t *testing.T) {
	data := tzif(rebuildZone, rebuildOffset)
	loc, err := time.LoadLocationFromTZData("x", data)
	if err != nil {
		t.Fatal(err)
	}
	if name, off := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC).In(loc).Zone(); name != rebuildZone || off != rebuildOffset {
		t.Errorf("Go reads zone %s%+d", name, off)
	}
	zone := filepath.Join(t.TempDir(), "zone")
	if err := os.WriteFile(zone, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("date", "-d", "@0", "+%H:%M %z %Z")
	cmd.Env = append(os.Environ(), "TZ="+zone)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "13:45 +1345 +1345" {
		t.Errorf("date(1) in the zone: %q", got)
	}
}
