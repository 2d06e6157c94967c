package sysctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := "# comment\n; other comment\n\nnet.ipv4.ip_forward = 1\n-kernel.unknown=2\nnet/ipv4/conf/eth0.1/rp_filter=0\n  kernel.printk = 4 4 1 7  \n"
	got, err := Parse(strings.NewReader(in), "a.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{Key: "net.ipv4.ip_forward", Value: "1", Source: "a.conf", Line: 4},
		{Key: "kernel.unknown", Value: "2", Ignore: true, Source: "a.conf", Line: 5},
		{Key: "net/ipv4/conf/eth0.1/rp_filter", Value: "0", Source: "a.conf", Line: 6},
		{Key: "kernel.printk", Value: "4 4 1 7", Source: "a.conf", Line: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if got[2].Path() != filepath.FromSlash("net/ipv4/conf/eth0.1/rp_filter") || got[0].Path() != filepath.FromSlash("net/ipv4/ip_forward") {
		t.Errorf("paths %q %q", got[2].Path(), got[0].Path())
	}
	for _, bad := range []string{"novalue\n", "=1\n", "net..x = 1\n", "../../etc/passwd = x\n"} {
		if _, err := Parse(strings.NewReader(bad), "b.conf"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLoadOrdersAndApplies(t *testing.T) {
	etc, pkg, proc := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(pkg, "10-keel.conf"), []byte("net.ipv4.ip_forward = 1\nkernel.panic = 10\n"), 0o644)
	os.WriteFile(filepath.Join(pkg, "50-hidden.conf"), []byte("kernel.panic = 99\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "50-hidden.conf"), []byte("kernel.panic = 5\n-kernel.missing = 1\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "notconf.txt"), []byte("garbage"), 0o644)
	for _, k := range []string{"net/ipv4/ip_forward", "kernel/panic"} {
		os.MkdirAll(filepath.Join(proc, filepath.Dir(k)), 0o755)
		os.WriteFile(filepath.Join(proc, k), []byte("0\n"), 0o644)
	}
	s, err := Load(etc, pkg, filepath.Join(pkg, "absent"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(proc, s); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"net/ipv4/ip_forward": "1\n", "kernel/panic": "5\n"} {
		if b, _ := os.ReadFile(filepath.Join(proc, k)); string(b) != want {
			t.Errorf("%s = %q, want %q", k, b, want)
		}
	}
	if _, err := os.Stat(filepath.Join(proc, "kernel/missing")); err == nil {
		t.Error("Apply created an unknown key")
	}
	err = Apply(proc, []Setting{{Key: "kernel.nope", Value: "1", Source: "x.conf", Line: 3}, {Key: "kernel.panic", Value: "7"}})
	if err == nil || !strings.Contains(err.Error(), "x.conf:3: kernel.nope") {
		t.Errorf("error: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(proc, "kernel/panic")); string(b) != "7\n" {
		t.Error("Apply stopped at the first error")
	}
}
