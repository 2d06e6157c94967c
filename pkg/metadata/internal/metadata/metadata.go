// Package metadata reads a machine's instance data — host name, user data,
// ssh keys — from a config drive (NoCloud "cidata" or OpenStack
// "config-2") or a cloud's metadata service (AWS IMDSv2, GCE, OpenStack),
// and writes it under /run/config for the other containers.
package metadata

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Data is what a source gave.
type Data struct {
	Source   string // "cidata /dev/sr0", "aws", …
	Hostname string
	UserData []byte
	SSHKeys  []string // authorized_keys lines
}

// Write puts d under dir (/run/config): userdata, hostname and
// ssh/authorized_keys, each written only when the source had it.
func Write(dir string, d Data) error {
	files := map[string][]byte{}
	if d.UserData != nil {
		files["userdata"] = d.UserData
	}
	if d.Hostname != "" {
		files["hostname"] = []byte(d.Hostname + "\n")
	}
	if len(d.SSHKeys) > 0 {
		files[filepath.Join("ssh", "authorized_keys")] = []byte(strings.Join(d.SSHKeys, "\n") + "\n")
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := writeAtomic(filepath.Join(dir, n), files[n]); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// addKeys appends the non-empty, non-comment lines of text not yet in keys.
func addKeys(keys []string, text string) []string {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		dup := false
		for _, k := range keys {
			dup = dup || k == l
		}
		if !dup {
			keys = append(keys, l)
		}
	}
	return keys
}

// ParseNoCloudMeta reads the simple YAML of a NoCloud meta-data file:
// local-hostname (or hostname) and public-keys (a list, or one string).
func ParseNoCloudMeta(text string, d *Data) {
	if v := yamlScalar(text, "local-hostname"); v != "" {
		d.Hostname = v
	} else if v := yamlScalar(text, "hostname"); v != "" {
		d.Hostname = v
	}
	for _, k := range []string{"public-keys", "public_keys", "ssh_authorized_keys"} {
		for _, v := range yamlList(text, k) {
			d.SSHKeys = addKeys(d.SSHKeys, v)
		}
	}
}

// ParseCloudConfig takes ssh_authorized_keys (for root) and hostname from a
// #cloud-config user-data, so a NoCloud seed written for cloud-init works.
// As in cloud-init, the user-data's hostname wins over the meta-data's.
func ParseCloudConfig(text string, d *Data) {
	if !strings.HasPrefix(text, "#cloud-config") {
		return
	}
	for _, v := range yamlList(text, "ssh_authorized_keys") {
		d.SSHKeys = addKeys(d.SSHKeys, v)
	}
	if h := yamlScalar(text, "hostname"); h != "" {
		d.Hostname = h
	}
}

// yamlScalar finds a top-level "key: value".
func yamlScalar(text, key string) string {
	s := bufio.NewScanner(strings.NewReader(text))
	for s.Scan() {
		line := s.Text()
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return unquote(strings.TrimSpace(v))
		}
	}
	return ""
}

// yamlList finds a top-level "key:" followed by "- item" lines, or a
// "key: value" / "key: [a, b]" on one line.
func yamlList(text, key string) []string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		k, v, ok := strings.Cut(lines[i], ":")
		if !ok || k != key {
			continue
		}
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			for _, item := range strings.Split(v[1:len(v)-1], ",") {
				if item = unquote(strings.TrimSpace(item)); item != "" {
					out = append(out, item)
				}
			}
			continue
		}
		if v != "" {
			out = append(out, unquote(v))
			continue
		}
		for i+1 < len(lines) {
			next := strings.TrimSpace(lines[i+1])
			if next == "" || next[0] == '#' {
				i++
				continue
			}
			item, isItem := strings.CutPrefix(next, "- ")
			if !isItem || !strings.HasPrefix(lines[i+1], " ") && !strings.HasPrefix(lines[i+1], "-") {
				break
			}
			out = append(out, unquote(strings.TrimSpace(item)))
			i++
		}
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// openStackMeta is the part of OpenStack's meta_data.json used here.
type openStackMeta struct {
	Hostname   string            `json:"hostname"`
	Name       string            `json:"name"`
	PublicKeys map[string]string `json:"public_keys"`
	Keys       []struct {
		Data string `json:"data"`
	} `json:"keys"`
}

// ParseOpenStackMeta reads meta_data.json (config-2 drive or the metadata
// service), keys in name order for a stable file.
func ParseOpenStackMeta(b []byte, d *Data) error {
	var m openStackMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("meta_data.json: %w", err)
	}
	d.Hostname = m.Hostname
	if d.Hostname == "" {
		d.Hostname = m.Name
	}
	names := make([]string, 0, len(m.PublicKeys))
	for n := range m.PublicKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d.SSHKeys = addKeys(d.SSHKeys, m.PublicKeys[n])
	}
	for _, k := range m.Keys {
		d.SSHKeys = addKeys(d.SSHKeys, k.Data)
	}
	return nil
}
