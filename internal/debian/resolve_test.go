package debian

import (
	"reflect"
	"strings"
	"testing"
)

// testIndex is a small amd64 Packages index exercising the resolver.
const testIndex = `Package: app
Version: 1.0
Architecture: amd64
Depends: libc6 (>= 2.30), mawk | awk, python3:any, mail-transport-agent, libold (<< 2~)
Pre-Depends: init-system-helpers (>= 1.50)
Recommends: bloat

Package: libc6
Version: 2.36-9
Architecture: amd64
Source: glibc (2.36-9+deb12u4)

Package: libc6
Version: 2.28-1
Architecture: amd64
Source: glibc

Package: libc6
Version: 2.40-1
Architecture: arm64

Package: mawk
Version: 1.3.4
Architecture: amd64
Provides: awk

Package: gawk
Version: 5.2
Architecture: amd64
Provides: awk

Package: python3
Version: 3.11.2-1+b1
Architecture: amd64

Package: postfix
Version: 3.7
Architecture: amd64
Provides: mail-transport-agent
Depends: ssl-cert

Package: exim4-daemon-light
Version: 4.96
Architecture: amd64
Provides: mail-transport-agent

Package: ssl-cert
Version: 1.1
Architecture: all

Package: libold
Version: 1.9
Architecture: amd64

Package: init-system-helpers
Version: 1.65
Architecture: all

Package: bloat
Version: 1
Architecture: amd64

Package: needs-new
Version: 1
Architecture: amd64
Depends: libc6 (>= 3)

Package: needs-virtual-version
Version: 1
Architecture: amd64
Depends: virt (>= 2)

Package: virt-old
Version: 1
Architecture: amd64
Provides: virt (= 1)

Package: virt-new
Version: 1
Architecture: amd64
Provides: virt (= 2)

Package: top
Version: 1
Architecture: amd64
Depends: middle

Package: middle
Version: 1
Architecture: amd64
Depends: libfoo (>= 2) | libbar
`

func newTestIndex(t *testing.T) *index {
	t.Helper()
	idx := &index{arch: "amd64", packages: map[string][]*Package{}, provides: map[string][]provider{}}
	if err := idx.add(testIndex); err != nil {
		t.Fatal(err)
	}
	idx.finish()
	return idx
}

func names(ps []Package) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name+"="+p.Version)
	}
	return out
}

func TestResolveSynthetic(t *testing.T) {
	idx := newTestIndex(t)
	got, err := idx.resolve([]string{"app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Highest amd64 libc6, first alternative, provider chosen by name
	// (exim4-daemon-light before postfix), no Recommends.
	want := []string{"app=1.0", "exim4-daemon-light=4.96", "init-system-helpers=1.65", "libc6=2.36-9", "libold=1.9", "mawk=1.3.4", "python3=3.11.2-1+b1"}
	if !reflect.DeepEqual(names(got), want) {
		t.Fatalf("got %v\nwant %v", names(got), want)
	}
	if got[3].Source != "glibc" || got[3].SourceVersion != "2.36-9+deb12u4" {
		t.Errorf("libc6 source = %q %q", got[3].Source, got[3].SourceVersion)
	}
	if got[0].Source != "app" || got[0].SourceVersion != "1.0" {
		t.Errorf("app source = %q %q", got[0].Source, got[0].SourceVersion)
	}
}

func TestResolvePrefersSelectedAlternative(t *testing.T) {
	idx := newTestIndex(t)
	// postfix is asked for first, so it satisfies mail-transport-agent
	// and gawk, asked for too, satisfies "mawk | awk".
	got, err := idx.resolve([]string{"postfix", "gawk", "app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(names(got), " ")
	if strings.Contains(s, "exim4") || strings.Contains(s, "mawk") || !strings.Contains(s, "ssl-cert=1.1") {
		t.Fatalf("got %s", s)
	}
}

func TestResolveExclude(t *testing.T) {
	idx := newTestIndex(t)
	got, err := idx.resolve([]string{"app"}, []string{"libc6", "mail-transport-agent", "python3"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"app=1.0", "init-system-helpers=1.65", "libold=1.9", "mawk=1.3.4"}
	if !reflect.DeepEqual(names(got), want) {
		t.Fatalf("got %v\nwant %v", names(got), want)
	}
}

func TestResolvePinnedVersion(t *testing.T) {
	idx := newTestIndex(t)
	got, err := idx.resolve([]string{"libc6=2.28-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"libc6=2.28-1"}; !reflect.DeepEqual(names(got), want) {
		t.Fatalf("got %v, want %v", names(got), want)
	}
	if _, err := idx.resolve([]string{"libc6=9"}, nil); err == nil || !strings.HasPrefix(err.Error(), "libc6 (= 9): not found") {
		t.Fatalf("missing pinned version: %v", err)
	}
}

func TestResolveVersionedVirtual(t *testing.T) {
	idx := newTestIndex(t)
	got, err := idx.resolve([]string{"needs-virtual-version"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"needs-virtual-version=1", "virt-new=1"}; !reflect.DeepEqual(names(got), want) {
		t.Fatalf("got %v, want %v", names(got), want)
	}
}

func TestResolveErrorsNameTheChain(t *testing.T) {
	idx := newTestIndex(t)
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"nosuch"}, "nosuch: not found"},
		{[]string{"top"}, "top -> middle -> libfoo (>= 2) | libbar: not found"},
		{[]string{"needs-new"}, "needs-new -> libc6 (>= 3): not found (libc6 has only 2.36-9, 2.28-1)"},
		{[]string{"app", "needs-new"}, "needs-new -> libc6 (>= 3): not found (libc6 2.36-9 is selected (via app -> libc6))"},
		{[]string{"libc6=2.28-1", "app"}, "app -> libc6 (>= 2.30): not found (libc6 2.28-1 is selected (via libc6))"},
		{[]string{"needs-new", "libc6=2.28-1"}, "needs-new -> libc6 (>= 3): not found (libc6 2.28-1 is selected (via libc6))"},
	}
	for _, tt := range tests {
		_, err := idx.resolve(tt.names, nil)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v: got %v, want %q", tt.names, err, tt.want)
		}
	}
}

func TestParseRelations(t *testing.T) {
	got := parseRelations("libc6 (>= 2.34), python3:any, foo [amd64] <!nocheck> | bar (<<1.0~), baz(=1)")
	want := [][]relation{
		{{name: "libc6", rel: ">=", version: "2.34"}},
		{{name: "python3", arch: "any"}},
		{{name: "foo"}, {name: "bar", rel: "<<", version: "1.0~"}},
		{{name: "baz", rel: "=", version: "1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}
