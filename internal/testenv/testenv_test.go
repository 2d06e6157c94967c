package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNamedTestsSayWhatTheyNeed checks every test of the module whose name
// promises QEMU or the network (…Slow, …RealMirror, …_Network) calls
// NeedQEMU or NeedNetwork, so `go test -short` skips it.
func TestNamedTestsSayWhatTheyNeed(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			name := fn.Name.Name
			var want []string
			switch {
			case strings.HasSuffix(name, "Slow"):
				want = []string{"NeedQEMU", "NeedNetwork"}
			case strings.HasSuffix(name, "RealMirror"), strings.HasSuffix(name, "_Network"):
				want = []string{"NeedNetwork"}
			default:
				continue
			}
			checked++
			if !calls(fn.Body, want) {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s: %s does not call testenv.%s", rel, name, strings.Join(want, " or testenv."))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 30 {
		t.Errorf("found %d Slow, RealMirror and _Network tests: is %s the module?", checked, root)
	}
}

// calls reports whether body calls testenv.F (or F, inside this package)
// for one of names.
func calls(body *ast.BlockStmt, names []string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return !found
		}
		var name string
		switch f := call.Fun.(type) {
		case *ast.SelectorExpr:
			if x, ok := f.X.(*ast.Ident); ok && x.Name == "testenv" {
				name = f.Sel.Name
			}
		case *ast.Ident:
			name = f.Name
		}
		for _, w := range names {
			if name == w {
				found = true
			}
		}
		return !found
	})
	return found
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func TestSkipsOnlyUnderShort(t *testing.T) {
	for name, need := range map[string]func(testing.TB){"NeedNetwork": NeedNetwork, "NeedQEMU": NeedQEMU} {
		ran := false
		t.Run(name, func(t *testing.T) {
			need(t)
			ran = true
		})
		if ran == testing.Short() {
			t.Errorf("%s: ran=%v under -short=%v", name, ran, testing.Short())
		}
	}
}
