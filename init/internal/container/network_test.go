package container

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/keelos/keel/internal/layout"
)

// inNewNetNS starts a process in a network namespace of its own and
// returns its pid; it is killed when the test ends.
func inNewNetNS(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The namespace exists once the process's differs from ours.
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)); err == nil && ns != self {
			return cmd.Process.Pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("unshare made no network namespace")
	return 0
}

// linksIn lists the interface names in the network namespace of pid.
func linksIn(t *testing.T, pid int) string {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %d: %v\n%s", pid, err, out)
	}
	return string(out)
}

// TestInterfacesMovedOrCreatedInTheNamespace gives a process in its own
// network namespace each kind of runtime.interfaces entry and checks,
// with iproute2, where each interface ends up.
func TestInterfacesMovedOrCreatedInTheNamespace(t *testing.T) {
	pid := inNewNetNS(t)
	// An existing host interface: one end of a veth pair (this kernel
	// may lack the dummy driver).
	existing := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "keeltmove0"}, PeerName: "keeltmove1"}
	if err := netlink.LinkAdd(existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{"keeltmove1", "keeltpeer0", "keeltpeer1", "keeltveth0", "keeltveth1"} {
			if l, err := netlink.LinkByName(n); err == nil {
				netlink.LinkDel(l)
			}
		}
	})
	err := setupInterfaces(pid, []layout.Interface{
		{Name: "keeltveth0", Add: "veth", Peer: "keeltpeer0"},
		{Name: "keeltveth1", Add: "veth", Peer: "keeltpeer1", CreateInNS: true},
		{Name: "keeltmove0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	inside := linksIn(t, pid)
	for _, n := range []string{"keeltveth0", "keeltveth1", "keeltmove0"} {
		if !strings.Contains(inside, n+"@") && !strings.Contains(inside, n+":") {
			t.Errorf("%s not in the container's namespace:\n%s", n, inside)
		}
		if _, err := netlink.LinkByName(n); err == nil {
			t.Errorf("%s still on the host", n)
		}
	}
	for _, n := range []string{"keeltpeer0", "keeltpeer1"} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			t.Errorf("peer %s not on the host: %v", n, err)
			continue
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("peer %s is down", n)
		}
	}

	// A name the host already uses cannot be created there and moved:
	// that is what create-in-ns is for.
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "keeltveth0"}}); err != nil {
		t.Fatal(err)
	}
	if err := setupInterfaces(pid, []layout.Interface{{Name: "keeltveth0", Add: "veth", Peer: "keeltpeer2"}}); err == nil {
		t.Error("a veth named like a host interface was created on the host")
	}
}
