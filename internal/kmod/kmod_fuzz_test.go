package kmod

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that no module file makes Parse panic, and that what
// it returns is canonical: names without directories, suffixes or
// dashes, dependencies sorted and not empty.
func FuzzParse(f *testing.F) {
	f.Add(moduleELF(f, "name=virtio-net\x00depends=virtio,net_failover\x00alias=pci:v*\x00"), uint8(0))
	f.Add(moduleELF(f, "depends=\x00"), uint8(0))
	f.Add([]byte("\x7fELF"), uint8(1))
	names := []string{"kernel/drivers/x-y.ko", "kernel/a.ko.xz", "kernel/b.ko.zst"}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		m, err := Parse(names[int(which)%len(names)], bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, n := range append([]string{m.Name}, m.Depends...) {
			if n == "" || strings.ContainsAny(n, "-/") || n != Canonical(n) {
				t.Fatalf("name %q is not canonical (module %+v)", n, m)
			}
		}
		if !slices.IsSorted(m.Depends) {
			t.Fatalf("depends %q not sorted", m.Depends)
		}
	})
}

// FuzzModinfo checks that the fields of a .modinfo section read back as
// they were written.
func FuzzModinfo(f *testing.F) {
	f.Add("name=virtio_net\x00depends=virtio\x00alias=a\x00alias=b\x00")
	f.Add("no-equals\x00=\x00k=v=w\x00")
	f.Fuzz(func(t *testing.T, modinfo string) {
		info, err := Modinfo(moduleELF(t, modinfo))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{}
		for _, field := range strings.Split(modinfo, "\x00") {
			if k, v, ok := strings.Cut(field, "="); ok {
				want[k] = append(want[k], v)
			}
		}
		if len(info) != len(want) {
			t.Fatalf("%q: %q, want %q", modinfo, info, want)
		}
		for k, vs := range want {
			if !slices.Equal(info[k], vs) {
				t.Fatalf("%q: %s = %q, want %q", modinfo, k, info[k], vs)
			}
		}
	})
}
