package linuxkit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// Each directory of testdata is a case: args holds the command line of
// keel convert linuxkit, one argument per line (--image-map, --format and
// the YAML files); out.toml is the spec it writes (absent when the input
// is invalid) and problems.txt what it reports. Relative sources and
// packages are found in the case's directory; ~ is testdata/home.
func TestConvertGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/args")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no cases")
	}
	home, err := filepath.Abs("testdata/home")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range dirs {
		dir := filepath.Dir(a)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res := convertCase(t, dir, home)
			var problems strings.Builder
			for _, p := range res.Problems {
				problems.WriteString(p.String() + "\n")
			}
			golden(t, filepath.Join(dir, "problems.txt"), []byte(problems.String()))
			golden(t, filepath.Join(dir, "out.toml"), res.TOML)
			if res.TOML != nil {
				// What is written loads as a spec, from where it is written.
				if _, err := spec.Parse(filepath.Join(dir, "build.toml"), res.TOML); err != nil {
					t.Errorf("the spec does not load: %v", err)
				}
			}
			// The same inputs give the same bytes.
			again := convertCase(t, dir, home)
			if !bytes.Equal(again.TOML, res.TOML) {
				t.Error("a second conversion wrote other bytes")
			}
		})
	}
}

// convertCase runs the conversion a case's args describe.
func convertCase(t *testing.T, dir, home string) *Result {
	t.Helper()
	args, err := os.ReadFile(filepath.Join(dir, "args"))
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{WorkDir: abs, OutDir: abs, HomeDir: home}
	var inputs []Input
	words := strings.Fields(string(args))
	for i := 0; i < len(words); i++ {
		switch w := words[i]; w {
		case "--image-map", "--format":
			i++
			if w == "--format" {
				opts.Formats = append(opts.Formats, words[i])
				continue
			}
			m, err := ParseMapping(words[i])
			if err != nil {
				t.Fatal(err)
			}
			opts.ImageMap = append(opts.ImageMap, m)
		default:
			data, err := os.ReadFile(filepath.Join(dir, w))
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, Input{Name: w, Data: data})
		}
	}
	res, err := Convert(inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// golden compares got with a golden file (absent for nil), or rewrites it
// with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if got == nil {
			os.Remove(file)
			return
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if os.IsNotExist(err) && got == nil {
		return
	}
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", file, got)
	}
}

func TestMappingMatch(t *testing.T) {
	for _, c := range []struct {
		from, ref string
		want      int
	}{
		{"linuxkit/sshd", "linuxkit/sshd:1234", repoMatch},
		{"linuxkit/sshd", "docker.io/linuxkit/sshd@sha256:" + strings.Repeat("a", 64), repoMatch},
		{"docker.io/linuxkit/sshd", "linuxkit/sshd:1234", repoMatch},
		{"linuxkit/sshd:1234", "index.docker.io/linuxkit/sshd:1234", refMatch},
		{"linuxkit/sshd:1234", "linuxkit/sshd:5678", noMatch},
		{"linuxkit/sshd", "linuxkit/sshd-extra:1", noMatch},
		{"alpine", "alpine:3.19", repoMatch},
		{"alpine", "library/alpine:3.19", repoMatch},
		{"localhost:5000/x", "localhost:5000/x:1", repoMatch},
		{"@pkg:../pkg/init", "@pkg:../pkg/init", exactMatch},
	} {
		if got := (Mapping{From: c.from}).match(c.ref); got != c.want {
			t.Errorf("%s against %s: %d, want %d", c.from, c.ref, got, c.want)
		}
	}
	// The closest mapping wins, whatever their order.
	c := &converter{opts: Options{ImageMap: []Mapping{{"linuxkit/sshd", "./a"}, {"linuxkit/sshd:2", "./b"}}}, used: make([]bool, 2)}
	if got, _ := c.mapImage("linuxkit/sshd:2"); got != "./b" {
		t.Errorf("linuxkit/sshd:2 mapped to %s, want ./b", got)
	}
	if got, _ := c.mapImage("linuxkit/sshd:1"); got != "./a" {
		t.Errorf("linuxkit/sshd:1 mapped to %s, want ./a", got)
	}
	if _, err := ParseMapping("no-equals"); err == nil {
		t.Error("a mapping without = was taken")
	}
	if err := checkMappings([]Mapping{{"a", "./x"}, {"a", "./y"}}); err == nil {
		t.Error("two mappings of one image were taken")
	}
}

// A file name is written into the spec's first comment: whatever it
// holds, the spec still loads.
func TestConvertOddFileName(t *testing.T) {
	res, err := Convert([]Input{{Name: "a\nb\x00\xff.yml", Data: []byte("kernel:\n  image: linuxkit/kernel:6.6\n  tar: none\n")}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.Parse("build.toml", res.TOML); err != nil || !strings.HasPrefix(string(res.TOML), "# Converted from LinuxKit's a?b?\uFFFD.yml ") ||
		res.Spec.Name != "a-b--" {
		t.Errorf("%v\n%s", err, res.TOML)
	}
}
