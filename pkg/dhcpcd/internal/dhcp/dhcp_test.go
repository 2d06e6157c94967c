package dhcp

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestResolvConfMergesInterfaces(t *testing.T) {
	got := string(ResolvConf(map[string]DNS{
		"eth1": {Servers: []net.IP{net.ParseIP("10.0.2.3"), net.ParseIP("1.1.1.1"), net.ParseIP("9.9.9.9")}, Search: []string{"b.example"}},
		"eth0": {Servers: []net.IP{net.ParseIP("10.0.2.3")}, Domain: "a.example", Search: []string{"a.example", "c.example"}},
	}))
	want := "# written by keel-dhcp\ndomain a.example\nsearch a.example c.example b.example\nnameserver 10.0.2.3\nnameserver 1.1.1.1\nnameserver 9.9.9.9\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestResolverWritesAtomically(t *testing.T) {
	dir := t.TempDir()
	r := &Resolver{Path: filepath.Join(dir, "resolvconf", "resolv.conf")}
	if err := r.Set("eth0", DNS{Servers: []net.IP{net.ParseIP("10.0.2.3")}}); err != nil {
		t.Fatal(err)
	}
	// A reader holding the old file keeps reading the old content: the
	// new file is a new inode, renamed over the old.
	old, err := os.Open(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := r.Set("eth1", DNS{Servers: []net.IP{net.ParseIP("10.0.3.3")}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(r.Path)
	if string(b) != "# written by keel-dhcp\nnameserver 10.0.2.3\nnameserver 10.0.3.3\n" {
		t.Errorf("got %q", b)
	}
	ob := make([]byte, 100)
	n, _ := old.Read(ob)
	if string(ob[:n]) != "# written by keel-dhcp\nnameserver 10.0.2.3\n" {
		t.Errorf("old reader saw %q", ob[:n])
	}
	ents, _ := os.ReadDir(filepath.Dir(r.Path))
	if len(ents) != 1 {
		t.Errorf("leftover temporary files: %v", ents)
	}
	if fi, _ := os.Stat(r.Path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func ack(t *testing.T, opts ...dhcpv4.Option) *dhcpv4.DHCPv4 {
	t.Helper()
	var mods []dhcpv4.Modifier
	for _, o := range opts {
		mods = append(mods, dhcpv4.WithOption(o))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTimersOf(t *testing.T) {
	for name, c := range map[string]struct {
		ack  *dhcpv4.DHCPv4
		want Timers
	}{
		"lease only": {ack(t, dhcpv4.OptIPAddressLeaseTime(86400*time.Second)), Timers{T1: 12 * time.Hour, T2: 21 * time.Hour, Lease: 24 * time.Hour}},
		"explicit": {ack(t, dhcpv4.OptIPAddressLeaseTime(time.Hour), dhcpv4.Option{Code: dhcpv4.OptionRenewTimeValue, Value: dhcpv4.Duration(10 * time.Minute)}, dhcpv4.Option{Code: dhcpv4.OptionRebindingTimeValue, Value: dhcpv4.Duration(40 * time.Minute)}),
			Timers{T1: 10 * time.Minute, T2: 40 * time.Minute, Lease: time.Hour}},
		"nonsense order": {ack(t, dhcpv4.OptIPAddressLeaseTime(time.Hour), dhcpv4.Option{Code: dhcpv4.OptionRenewTimeValue, Value: dhcpv4.Duration(2 * time.Hour)}, dhcpv4.Option{Code: dhcpv4.OptionRebindingTimeValue, Value: dhcpv4.Duration(3 * time.Hour)}),
			Timers{T1: 30 * time.Minute, T2: 52*time.Minute + 30*time.Second, Lease: time.Hour}},
		"nothing": {ack(t), Timers{T1: 30 * time.Minute, T2: 52*time.Minute + 30*time.Second, Lease: time.Hour}},
	} {
		if got := TimersOf(c.ack); got != c.want {
			t.Errorf("%s: got %+v, want %+v", name, got, c.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	for left, want := range map[time.Duration]time.Duration{
		time.Hour:        30 * time.Minute,
		90 * time.Second: time.Minute,
		20 * time.Second: 20 * time.Second,
	} {
		if got := retryDelay(left); got != want {
			t.Errorf("retryDelay(%v) = %v, want %v", left, got, want)
		}
	}
}
