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
