package pkgbuild

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/keelos/keel/internal/fstree"
)

// confDirs are where systemd reads sysusers.d and tmpfiles.d files, in
// precedence order: a file in an earlier directory hides one of the same
// name in a later one (/lib for Debian's split-/usr systemd).
var confDirs = []string{"/etc", "/run", "/usr/local/lib", "/usr/lib", "/lib"}

// confFile is one sysusers.d or tmpfiles.d file of an image.
type confFile struct {
	path string // in the image, for messages
	data []byte
}

// readConfDir gathers the NAME.conf files of kind ("sysusers.d") in the
// image, one per name, sorted by name as systemd applies them. A file
// linked to /dev/null masks the one of its name, as in systemd.
func readConfDir(view *fstree.Tree, kind string) ([]confFile, error) {
	byName := map[string]confFile{}
	seen := map[string]bool{}
	entries := view.Entries()
	for _, d := range confDirs {
		dir := path.Join(d, kind)
		rp, err := view.Resolve(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if path.Dir(e.Path) != rp || !strings.HasSuffix(e.Path, ".conf") {
				continue
			}
			name := path.Base(e.Path)
			if seen[name] {
				continue
			}
			seen[name] = true
			p := path.Join(dir, name)
			if e.Mode.Type() == fs.ModeSymlink && e.Linkname == "/dev/null" {
				continue
			}
			data, found, err := readTreeFile(view, p)
			if err != nil {
				return nil, err
			}
			if found {
				byName[name] = confFile{path: p, data: data}
			}
		}
	}
	var out []confFile
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, byName[name])
	}
	return out, nil
}

// readTreeFile reads the regular file at p in the tree, following
// symlinks inside it, at most maxAccountFile bytes. found is false when
// there is none (nothing, a directory, a dangling link).
func readTreeFile(view *fstree.Tree, p string) (data []byte, found bool, err error) {
	for range 40 {
		rp, err := view.Resolve(p)
		if err != nil {
			return nil, false, nil
		}
		e, ok := view.Get(rp)
		switch {
		case !ok:
			return nil, false, nil
		case e.Mode.Type() == fs.ModeSymlink:
			if strings.HasPrefix(e.Linkname, "/") {
				p = e.Linkname
			} else {
				p = path.Join("/", path.Dir(rp), e.Linkname)
			}
			continue
		case !e.Mode.IsRegular():
			return nil, false, nil
		case e.Size > maxAccountFile:
			return nil, false, fmt.Errorf("%s: %d bytes, more than the %d keel reads", p, e.Size, maxAccountFile)
		}
		rc, err := view.Open(e)
		if err != nil {
			return nil, false, err
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, maxAccountFile+1))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", p, err)
		}
		return data, true, nil
	}
	return nil, false, fmt.Errorf("%s: too many levels of symbolic links", p)
}

// confLine is one line of a sysusers.d or tmpfiles.d file.
type confLine struct {
	file string
	num  int
	text string
}

func (c confLine) String() string { return fmt.Sprintf("%s:%d", c.file, c.num) }

// confLines lists a file's lines that are not empty or comments.
func confLines(f confFile) []confLine {
	var out []confLine
	for n, l := range lines(f.data) {
		if t := strings.TrimSpace(l); !strings.HasPrefix(t, "#") {
			out = append(out, confLine{f.path, n, t})
		}
	}
	return out
}

// errSkip marks a line keel does not apply at build time (it needs the
// running machine, or does nothing on an image): it is reported, not
// fatal.
var errSkip = errors.New("not applied at build time")

func skipf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errSkip, fmt.Sprintf(format, args...))
}

// splitFields splits a line into n whitespace-separated fields, as
// systemd does: a field may be quoted ("…" or '…') and hold C escapes;
// with rest, whatever follows the n-th field (after blanks) is returned
// as it is written (tmpfiles.d's argument).
func splitFields(s string, n int, rest bool) (fields []string, tail string, err error) {
	for len(fields) < n {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return fields, "", nil
		}
		var b strings.Builder
		var quote byte
		i := 0
	word:
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case quote == 0 && (c == ' ' || c == '\t'):
				break word
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote != 0 && c == quote:
				quote = 0
			case c == '\\':
				r, size, err := unescape(s[i:])
				if err != nil {
					return nil, "", err
				}
				b.WriteString(r)
				i += size - 1
			default:
				b.WriteByte(c)
			}
		}
		if quote != 0 {
			return nil, "", fmt.Errorf("unterminated quote in %q", s)
		}
		fields = append(fields, b.String())
		s = s[i:]
	}
	if rest {
		tail = strings.TrimLeft(s, " \t")
	} else if strings.TrimSpace(s) != "" {
		return nil, "", fmt.Errorf("more than %d fields", n)
	}
	return fields, tail, nil
}

// unescape decodes the C escape at the start of s and says how many bytes
// it took.
func unescape(s string) (string, int, error) {
	if len(s) < 2 {
		return "", 0, fmt.Errorf("a lone backslash")
	}
	switch c := s[1]; c {
	case '\\', '"', '\'', ' ':
		return string(c), 2, nil
	case 'n':
		return "\n", 2, nil
	case 't':
		return "\t", 2, nil
	case 'r':
		return "\r", 2, nil
	case 'a':
		return "\a", 2, nil
	case 'b':
		return "\b", 2, nil
	case 'f':
		return "\f", 2, nil
	case 'v':
		return "\v", 2, nil
	case 's':
		return " ", 2, nil
	case 'x':
		if len(s) >= 4 {
			if v, err := strconv.ParseUint(s[2:4], 16, 8); err == nil && v != 0 {
				return string([]byte{byte(v)}), 4, nil
			}
		}
	}
	return "", 0, fmt.Errorf("unknown escape %q", s[:2])
}

// unescapeAll decodes every C escape of s (tmpfiles.d's argument).
func unescapeAll(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		r, size, err := unescape(s[i:])
		if err != nil {
			return "", err
		}
		b.WriteString(r)
		i += size - 1
	}
	return b.String(), nil
}

// staticSpecifiers are the systemd specifiers whose value is the same on
// every machine the image boots (for the system instance); the others
// (machine and boot id, host name, kernel release, os-release fields) are
// known only on the running machine.
var staticSpecifiers = map[byte]string{
	'C': "/var/cache", 'L': "/var/log", 'S': "/var/lib", 't': "/run", 'T': "/tmp", 'V': "/var/tmp",
	'h': "/root", 'u': "root", 'U': "0", 'g': "root", 'G': "0", '%': "%",
}

// systemdArch is %a: systemd's name of the architecture.
var systemdArch = map[string]string{"amd64": "x86-64", "arm64": "arm64"}

// expandSpecifiers replaces the %x specifiers of s; one that only the
// running machine knows makes the line one keel skips.
func expandSpecifiers(s, arch string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q ends in a lone %%", s)
		}
		i++
		if v, ok := staticSpecifiers[s[i]]; ok {
			b.WriteString(v)
		} else if s[i] == 'a' {
			b.WriteString(systemdArch[arch])
		} else {
			return "", skipf("%%%c is known only on the running machine", s[i])
		}
	}
	return b.String(), nil
}
