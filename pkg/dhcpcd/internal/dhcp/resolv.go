package dhcp

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
)

// DNS is what one interface's lease says about name resolution.
type DNS struct {
	Servers []net.IP
	Search  []string
	Domain  string
}

// ResolvConf merges the DNS settings of every interface into one
// resolv.conf(5), interfaces in name order, duplicates dropped, at most
// three name servers (the libc limit).
func ResolvConf(byIface map[string]DNS) []byte {
	names := make([]string, 0, len(byIface))
	for n := range byIface {
		names = append(names, n)
	}
	sort.Strings(names)
	var servers, search []string
	domain := ""
	for _, n := range names {
		d := byIface[n]
		for _, ip := range d.Servers {
			if s := ip.String(); !slices.Contains(servers, s) {
				servers = append(servers, s)
			}
		}
		for _, s := range append([]string{d.Domain}, d.Search...) {
			if s != "" && !slices.Contains(search, s) {
				search = append(search, s)
			}
		}
		if domain == "" {
			domain = d.Domain
		}
	}
	var b bytes.Buffer
	b.WriteString("# written by keel-dhcp\n")
	if domain != "" {
		fmt.Fprintf(&b, "domain %s\n", domain)
	}
	if len(search) > 0 {
		b.WriteString("search")
		for _, s := range search {
			b.WriteString(" " + s)
		}
		b.WriteString("\n")
	}
	for i, s := range servers {
		if i == 3 {
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return b.Bytes()
}

// Resolver keeps the per-interface DNS settings and rewrites the file on
// every change.
type Resolver struct {
	Path string
	mu   sync.Mutex
	dns  map[string]DNS
}

// Set records iface's settings and rewrites the file.
func (r *Resolver) Set(iface string, d DNS) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dns == nil {
		r.dns = map[string]DNS{}
	}
	r.dns[iface] = d
	return WriteFileAtomic(r.Path, ResolvConf(r.dns), 0o644)
}

// WriteFileAtomic replaces path with data so readers see the old or the
// new file, never a part: resolv.conf is read at any moment by other
// containers.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
