package container

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// setupInterfaces gives the container at pid its runtime.interfaces:
// a new veth pair (the named end created directly in the container's
// network namespace, the peer left up on the host), or an existing host
// interface moved in.
func setupInterfaces(pid int, ifaces []layout.Interface) error {
	for _, i := range ifaces {
		switch i.Add {
		case "veth":
			peer := i.Peer
			if peer == "" {
				return fmt.Errorf("interface %s: a veth needs a peer name", i.Name)
			}
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: i.Name, Namespace: netlink.NsPid(pid)}, PeerName: peer}
			if err := netlink.LinkAdd(v); err != nil {
				return fmt.Errorf("interface %s: creating veth with peer %s: %w", i.Name, peer, err)
			}
			l, err := netlink.LinkByName(peer)
			if err != nil {
				return fmt.Errorf("interface %s: %w", peer, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("interface %s: %w", peer, err)
			}
		case "":
			l, err := netlink.LinkByName(i.Name)
			if err != nil {
				return fmt.Errorf("interface %s: %w", i.Name, err)
			}
			if err := netlink.LinkSetNsPid(l, pid); err != nil {
				return fmt.Errorf("interface %s: moving into the container: %w", i.Name, err)
			}
		default:
			return fmt.Errorf("interface %s: unknown add %q (want veth)", i.Name, i.Add)
		}
	}
	return nil
}

// bindNamespaces bind-mounts /proc/PID/ns/* onto the requested paths so
// other containers can join them by path.
func bindNamespaces(pid int, b *layout.BindNS) error {
	if b == nil {
		return nil
	}
	for _, n := range []struct{ kind, path string }{
		{"net", b.Net}, {"pid", b.Pid}, {"ipc", b.Ipc}, {"uts", b.Uts}, {"mnt", b.Mnt}, {"cgroup", b.Cgroup},
	} {
		if n.path == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(n.path), 0o755); err != nil {
			return fmt.Errorf("bind-ns %s: %w", n.kind, err)
		}
		f, err := os.OpenFile(n.path, os.O_CREATE|os.O_RDONLY, 0o444)
		if err != nil {
			return fmt.Errorf("bind-ns %s: %w", n.kind, err)
		}
		f.Close()
		// A previous run of the container may have left its binding.
		_ = unix.Unmount(n.path, unix.MNT_DETACH)
		src := fmt.Sprintf("/proc/%d/ns/%s", pid, n.kind)
		if err := unix.Mount(src, n.path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-ns %s onto %s: %w", n.kind, n.path, err)
		}
	}
	return nil
}
