package debian

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// MirrorEnv names the environment variable that overrides the mirror.
const MirrorEnv = "KEEL_DEBIAN_MIRROR"

// MirrorFromHost returns the Debian archive URL to use: $KEEL_DEBIAN_MIRROR
// when set, else the first Debian archive (not the security archive) that
// the host's apt configuration under /etc/apt names.
func MirrorFromHost() (string, error) {
	if m := strings.TrimSpace(os.Getenv(MirrorEnv)); m != "" {
		return strings.TrimRight(m, "/"), nil
	}
	return mirrorFromAptDir("/etc/apt")
}

// mirrorFromAptDir reads sources.list, then sources.list.d/*.list and
// *.sources in name order, as apt does, and returns the first Debian
// archive URI found.
func mirrorFromAptDir(dir string) (string, error) {
	files := []string{filepath.Join(dir, "sources.list")}
	entries, err := os.ReadDir(filepath.Join(dir, "sources.list.d"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading apt sources: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, filepath.Join(dir, "sources.list.d", n))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading apt sources: %w", err)
		}
		var sources []aptSource
		if strings.HasSuffix(f, ".sources") {
			sources, err = parseDeb822Sources(string(data))
			if err != nil {
				return "", fmt.Errorf("%s: %w", f, err)
			}
		} else {
			sources = parseOneLineSources(string(data))
		}
		for _, s := range sources {
			if s.isDebianArchive() {
				return strings.TrimRight(s.uri, "/"), nil
			}
		}
	}
	return "", fmt.Errorf("no Debian archive found in %s/sources.list or %s/sources.list.d: set %s to the URL of a Debian mirror",
		dir, dir, MirrorEnv)
}

// aptSource is one binary ("deb") repository of the apt configuration.
type aptSource struct {
	uri    string
	suites []string
}

// parseOneLineSources reads the classic format:
// "deb [options] URI suite [component…]".
func parseOneLineSources(data string) []aptSource {
	var out []aptSource
	for _, line := range strings.Split(data, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if strings.HasPrefix(fields[0], "[") {
			// Options may contain blanks: skip to the closing bracket.
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) > 0 {
				fields = fields[1:]
			}
		}
		if len(fields) < 2 {
			continue
		}
		out = append(out, aptSource{uri: fields[0], suites: []string{fields[1]}})
	}
	return out
}

// parseDeb822Sources reads the deb822 format of *.sources files.
func parseDeb822Sources(data string) ([]aptSource, error) {
	var out []aptSource
	err := ParseParagraphs(data, func(p Paragraph) error {
		if strings.EqualFold(p.Value("Enabled"), "no") {
			return nil
		}
		if !slices.Contains(strings.Fields(p.Value("Types")), "deb") {
			return nil
		}
		suites := strings.Fields(p.Value("Suites"))
		for _, u := range strings.Fields(p.Value("URIs")) {
			out = append(out, aptSource{uri: u, suites: suites})
		}
		return nil
	})
	return out, err
}

// debianSuites are the Debian code names and classes; a source whose suite
// is one of them (possibly with -updates, -backports…) is a Debian
// archive, which tells it apart from third-party repositories on a Debian
// host.
var debianSuites = []string{
	"stable", "oldstable", "oldoldstable", "testing", "unstable", "experimental",
	"jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
}

func (s aptSource) isDebianArchive() bool {
	u, err := url.Parse(s.uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "-security") {
		return false
	}
	for _, suite := range s.suites {
		if strings.Contains(suite, "security") {
			return false
		}
	}
	for _, suite := range s.suites {
		base, _, _ := strings.Cut(suite, "-")
		if slices.Contains(debianSuites, base) {
			return true
		}
	}
	return false
}
