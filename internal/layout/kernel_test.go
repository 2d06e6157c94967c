package layout

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// xsysConstants reads the NAME = 0xN constants whose names match re from
// x/sys/unix's generated Linux source, the module this package takes its
// numbers from: a second reading of them, by name, that does not go
// through the table.
func xsysConstants(t *testing.T, files string, re *regexp.Regexp) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "golang.org/x/sys/unix").Output()
	if err != nil {
		t.Fatalf("go list golang.org/x/sys/unix: %v", err)
	}
	paths, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), files))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s in x/sys/unix (%v)", files, err)
	}
	consts := map[string]uint64{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			v, err := strconv.ParseUint(m[2], 0, 64)
			if err != nil {
				t.Fatalf("%s: %s = %s: %v", p, m[1], m[2], err)
			}
			consts[m[1]] = v
		}
	}
	return consts
}

func TestCapabilityNumbersAreTheKernels(t *testing.T) {
	want := xsysConstants(t, "zerrors_linux.go", regexp.MustCompile(`(?m)^\s+(CAP_[A-Z_]+)\s+= (0x[0-9a-f]+|[0-9]+)$`))
	delete(want, "CAP_LAST_CAP")
	if len(want) < 41 {
		t.Fatalf("read %d capabilities from x/sys/unix, want at least the 41 of Linux 6.x", len(want))
	}
	names := Capabilities()
	seen := map[string]bool{}
	for i, name := range names {
		n, ok := CapabilityNumber(name)
		if !ok {
			t.Fatalf("CapabilityNumber(%q) not found", name)
		}
		if w, ok := want[name]; !ok || uint64(n) != w {
			t.Errorf("%s = %d, x/sys/unix says %d (defined: %v)", name, n, w, ok)
		}
		if i > 0 {
			if prev, _ := CapabilityNumber(names[i-1]); prev >= n {
				t.Errorf("%s (%d) after %s (%d): the table is not in number order", name, n, names[i-1], prev)
			}
		}
		seen[name] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("x/sys/unix has %s, the table does not", name)
		}
	}
	if _, ok := CapabilityNumber("CAP_NOPE"); ok {
		t.Error("CapabilityNumber(CAP_NOPE) found")
	}
}

func TestRlimitResourcesAreTheKernels(t *testing.T) {
	// RLIMIT_CPU is in the shared file, the others per architecture.
	re := regexp.MustCompile(`(?m)^\s+(RLIMIT_[A-Z]+)\s+= (0x[0-9a-f]+|[0-9]+)$`)
	want := xsysConstants(t, "zerrors_linux.go", re)
	arch := xsysConstants(t, "zerrors_linux_"+runtime.GOARCH+".go", re)
	for k, v := range arch {
		want[k] = v
	}
	delete(want, "RLIMIT_INFINITY")
	if len(want) != 16 {
		t.Fatalf("read %d limits from x/sys/unix: %v", len(want), want)
	}
	for name, w := range want {
		n, ok := RlimitResource(name)
		if !ok {
			t.Errorf("RlimitResource(%q) not found", name)
			continue
		}
		if uint64(n) != w {
			t.Errorf("%s = %d, x/sys/unix (%s) says %d", name, n, runtime.GOARCH, w)
		}
	}
}
