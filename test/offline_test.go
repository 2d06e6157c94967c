package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/tooltest"
)

// keelNoNetwork runs keel in a network namespace with no interface at all
// (unshare -n): any connection it tried would fail.
func keelNoNetwork(keel string, args ...string) *exec.Cmd {
	return exec.Command("unshare", append([]string{"--net", "--", keel}, args...)...)
}

// TestFrozenBuildWithoutNetwork_Network locks the reference image (with
// one package of its own added), builds it online, then builds it again
// with --frozen inside a network namespace without interfaces: the
// outputs must be the same bytes. A package changed after locking must
// then make --locked fail (exit 1), naming it.
func TestFrozenBuildWithoutNetwork_Network(t *testing.T) {
	testenv.NeedNetwork(t)
	tooltest.Need(t, "unshare")
	keel := keelBinary(t)
	ref, err := filepath.Abs("../build.toml")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// build.lock goes next to the first spec: this directory, not the
	// repository.
	first := filepath.Join(work, "extra.toml")
	if err := os.Mkdir(filepath.Join(work, "extra"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, first, []byte("[[service]]\nname = \"extra\"\nimage = \"./extra\"\ncommand = [\"/bin/true\"]\n"))
	writeFile(t, filepath.Join(work, "extra", "package.toml"),
		[]byte("name = \"extra\"\n\n[[file]]\npath = \"/etc/extra\"\ncontents = \"one\\n\"\n"))
	specs := []string{first, ref}
	run := func(cmd *exec.Cmd) (string, error) {
		t.Helper()
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(exec.Command(keel, append([]string{"lock", "--arch", "amd64"}, specs...)...)); err != nil {
		t.Fatalf("keel lock: %v\n%s", err, out)
	}
	lockText, err := os.ReadFile(filepath.Join(work, "build.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lockText), "[[debian]]") || !strings.Contains(string(lockText), "filename = ") {
		t.Fatalf("build.lock pins no [debian] section:\n%.2000s", lockText)
	}
	buildArgs := func(dir string, flags ...string) []string {
		return append(append([]string{"build", "--arch", "amd64", "--format", "iso-efi", "--dir", filepath.Join(work, dir)}, flags...), specs...)
	}
	start := time.Now()
	if out, err := run(exec.Command(keel, buildArgs("online")...)); err != nil {
		t.Fatalf("online build: %v\n%s", err, out)
	}
	t.Logf("online build: %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if out, err := run(keelNoNetwork(keel, buildArgs("frozen", "--frozen")...)); err != nil {
		t.Fatalf("keel build --frozen without a network: %v\n%s", err, out)
	}
	t.Logf("frozen build without a network: %s", time.Since(start).Round(time.Millisecond))
	sameOutputs(t, hashDir(t, filepath.Join(work, "online")), hashDir(t, filepath.Join(work, "frozen")))

	// A package changed since keel lock: refused, named, exit 1.
	writeFile(t, filepath.Join(work, "extra", "package.toml"),
		[]byte("name = \"extra\"\n\n[[file]]\npath = \"/etc/extra\"\ncontents = \"two\\n\"\n"))
	out, err := run(keelNoNetwork(keel, buildArgs("changed", "--locked")...))
	if code := exitCode(err); code != 1 {
		t.Fatalf("--locked with a changed package: exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "image ./extra (amd64): locked sha256:") {
		t.Errorf("--locked does not name the changed package:\n%s", out)
	}
}

// TestOfflineNamesWhatIsMissing_Network builds a package with a [debian]
// section from an empty cache with --offline, without a network: the
// error names the missing InRelease and the command that fetches it.
func TestOfflineNamesWhatIsMissing_Network(t *testing.T) {
	testenv.NeedNetwork(t) // the mirror comes from the host's apt configuration
	tooltest.Need(t, "unshare")
	keel := keelBinary(t)
	getty, err := filepath.Abs("../pkg/getty")
	if err != nil {
		t.Fatal(err)
	}
	cmd := keelNoNetwork(keel, "pkg", "build", "--offline", "--cache", t.TempDir(), "--arch", "amd64", getty)
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("keel pkg build --offline with an empty cache: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"no InRelease of bookworm", "keel fetch"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
}

// exitCode is a finished command's exit status (0 when err is nil).
func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
