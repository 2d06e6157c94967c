package test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/testenv"
)

// keelBinary builds cmd/keel once for the tests that drive the CLI.
func keelBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keel")
	out, err := exec.Command("go", "build", "-o", p, "../cmd/keel").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return p
}

// everyFormat is every output format keel writes.
var everyFormat = []string{"kernel+initrd", "tar", "uki", "iso-efi", "iso", "raw-efi", "qcow2-efi",
	"raw", "vhd", "dynamic-vhd", "vhdx", "vmdk", "ova", "gce", "aws"}

// x86Formats boot through a BIOS, which only amd64 has.
var x86Formats = []string{"iso-bios", "raw-bios", "qcow2-bios"}

// TestReproducibleEveryFormatSlow builds every format of the reference
// image twice through the CLI, each time with its own cache directory
// (so every package is built afresh), a different time zone, umask and
// working directory, and requires the outputs to be identical.
func TestReproducibleEveryFormatSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	t.Parallel()
	keel := keelBinary(t)
	spec, err := filepath.Abs("../build.toml")
	if err != nil {
		t.Fatal(err)
	}
	runs := []struct{ tz, umask string }{{"UTC", "022"}, {"Pacific/Chatham", "077"}}
	var sums []map[string]string
	for i, r := range runs {
		work := t.TempDir()
		out := filepath.Join(work, "out")
		for arch, formats := range map[string][]string{"amd64": append(everyFormat, x86Formats...), "arm64": everyFormat} {
			cmd := exec.Command("sh", "-c", "umask "+r.umask+" && exec \"$@\"", "sh",
				keel, "build", "--cache", filepath.Join(work, "cache"), "--dir", out,
				"--arch", arch, "--format", strings.Join(formats, ","), spec)
			cmd.Dir = work
			cmd.Env = append(os.Environ(), "TZ="+r.tz)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build %d for %s: %v\n%s", i+1, arch, err, b)
			}
		}
		sums = append(sums, hashDir(t, out))
	}
	// kernel+initrd writes three files, every other format one, and the
	// SBOM comes with each architecture.
	if want := 2*(len(everyFormat)+3) + len(x86Formats); len(sums[0]) != want {
		t.Fatalf("expected %d outputs, got %d: %v", want, len(sums[0]), sums[0])
	}
	sameOutputs(t, sums[0], sums[1])
}

// sameOutputs fails the test for every output the two builds did not
// both write, byte for byte the same (name → SHA-256).
func sameOutputs(t *testing.T, first, second map[string]string) {
	t.Helper()
	for _, name := range sortedNames(first, second) {
		a, b := first[name], second[name]
		switch {
		case a == "" || b == "":
			t.Errorf("%s: written by only one build", name)
		case a != b:
			t.Errorf("%s: differs: %s vs %s", name, a, b)
		default:
			t.Logf("%s  %s", a, name)
		}
	}
}

func hashDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left behind: %s", e.Name())
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sums[e.Name()] = hex.EncodeToString(h.Sum(nil))
	}
	return sums
}

func sortedNames(ms ...map[string]string) []string {
	seen := map[string]bool{}
	var names []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	sort.Strings(names)
	return names
}

// TestVerifyReproducibleFlagSlow runs `keel build --verify-reproducible`,
// which builds a second time from an empty cache under another umask and
// time zone and compares every output, on the minimal example.
func TestVerifyReproducibleFlagSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	t.Parallel()
	keel := keelBinary(t)
	spec, err := filepath.Abs("../examples/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out := filepath.Join(work, "out")
	cmd := exec.Command(keel, "build", "--verify-reproducible", "--cache", filepath.Join(work, "cache"),
		"--dir", out, "--arch", "amd64", "--format", "kernel+initrd,uki", spec)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("keel build --verify-reproducible: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "reproducible: 5 outputs bit-identical") {
		t.Errorf("no verdict for 5 outputs on stderr:\n%s", stderr.String())
	}
	for _, name := range []string{"minimal-amd64-kernel", "minimal-amd64-initrd.img", "minimal-amd64.efi"} {
		if !strings.Contains(string(stdout), filepath.Join(out, name)) {
			t.Errorf("stdout does not list %s:\n%s", name, stdout)
		}
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
}
