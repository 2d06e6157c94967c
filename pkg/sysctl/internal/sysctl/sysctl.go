// Package sysctl reads sysctl.d(5) files and writes their settings under
// /proc/sys.
package sysctl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Setting is one "key = value" line.
type Setting struct {
	Key    string // net.ipv4.ip_forward, or net/ipv4/conf/eth0.1/rp_filter when a name holds dots
	Value  string
	Ignore bool // the line began with "-": failures are not errors
	Source string
	Line   int
}

// Parse reads one sysctl.d file. Comments start with '#' or ';'; keys may
// use '.' or '/' as separator.
func Parse(r io.Reader, source string) ([]Setting, error) {
	var out []Setting
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		st := Setting{Source: source, Line: n}
		if line[0] == '-' {
			st.Ignore = true
			line = line[1:]
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key = value, got %q", source, n, s.Text())
		}
		st.Key = strings.TrimSpace(k)
		st.Value = strings.TrimSpace(v)
		if st.Key == "" || strings.Contains(st.Key, "..") {
			return nil, fmt.Errorf("%s:%d: bad key %q", source, n, k)
		}
		out = append(out, st)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return out, nil
}

// Load reads every *.conf of the directories, in order of file name
// across all of them (as systemd-sysctl does); a file name seen in an
// earlier directory hides the same name in later ones. Missing
// directories are skipped.
func Load(dirs ...string) ([]Setting, error) {
	byName := map[string]string{}
	for _, d := range dirs {
		m, err := filepath.Glob(filepath.Join(d, "*.conf"))
		if err != nil {
			return nil, fmt.Errorf("sysctl: %w", err)
		}
		for _, p := range m {
			if _, seen := byName[filepath.Base(p)]; !seen {
				byName[filepath.Base(p)] = p
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Setting
	for _, n := range names {
		f, err := os.Open(byName[n])
		if err != nil {
			return nil, fmt.Errorf("sysctl: %w", err)
		}
		s, err := Parse(f, byName[n])
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("sysctl: %w", err)
		}
		out = append(out, s...)
	}
	return out, nil
}

// Apply writes each setting under procSys ("/proc/sys"), in order, so a
// later setting of the same key wins. It returns the errors of settings
// not marked Ignore, joined, after trying all of them.
func Apply(procSys string, settings []Setting) error {
	var errs []error
	for _, s := range settings {
		if err := write(filepath.Join(procSys, s.Path()), s.Value); err != nil && !s.Ignore {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", s.Source, s.Line, s.Key, err))
		}
	}
	return errors.Join(errs...)
}

// Path is the key as a path relative to /proc/sys: with a '/' in the key
// the dots are part of names, as in sysctl.d(5).
func (s Setting) Path() string {
	if strings.Contains(s.Key, "/") {
		return filepath.FromSlash(s.Key)
	}
	return filepath.FromSlash(strings.ReplaceAll(s.Key, ".", "/"))
}

// write never creates: an unknown key is an error, as in /proc/sys.
func write(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
