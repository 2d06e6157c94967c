package sbom

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"strings"
)

// GoModules lists the modules linked into the Go binary r, as its build
// info records them: the main module, every dependency (after replace
// directives) and the standard library of the toolchain that built it.
// binary names the file in the image (e.g. "/init") and is copied into
// each GoModule.
//
// A binary without build info (not Go, or built without module support)
// is not an error: it has no modules to report, so GoModules returns nil,
// nil; callers can feed it every executable of the image.
func GoModules(r io.ReaderAt, binary string) ([]GoModule, error) {
	bi, err := buildinfo.Read(r)
	if err != nil {
		if isNotGo(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("sbom: build info of %s: %w", binary, err)
	}
	var out []GoModule
	if v := bi.GoVersion; v != "" {
		// "go1.26.0 X:boringcrypto" and the like: keep the version only.
		v, _, _ = strings.Cut(v, " ")
		out = append(out, GoModule{Path: "stdlib", Version: v, Binary: binary})
	}
	if bi.Main.Path != "" {
		out = append(out, GoModule{Path: bi.Main.Path, Version: bi.Main.Version, Sum: bi.Main.Sum, Binary: binary})
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		out = append(out, GoModule{Path: d.Path, Version: d.Version, Sum: d.Sum, Binary: binary})
	}
	return out, nil
}

// GoModulesFile is GoModules on a file of the host.
func GoModulesFile(path, binary string) ([]GoModule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	defer f.Close()
	return GoModules(f, binary)
}

// isNotGo tells the errors debug/buildinfo returns for files that are not
// Go executables from real read failures. buildinfo has no exported error
// values for them, so this matches its messages.
func isNotGo(err error) bool {
	msg := err.Error()
	for _, s := range []string{"not a Go executable", "unrecognized file format", "no build info"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
