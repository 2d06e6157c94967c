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
// a new veth pair, whose named end is created on the host and moved into
// the container's network namespace (or, with create-in-ns, created
// there directly, never existing on the host) while the peer stays up on
// the host; or an existing host interface moved in.
func setupInterfaces(pid int, ifaces []layout.Interface) error {
	for _, i := range ifaces {
		switch i.Add {
		case "veth":
			peer := i.Peer
			if peer == "" {
				return fmt.Errorf("interface %s: a veth needs a peer name", i.Name)
			}
			attrs := netlink.LinkAttrs{Name: i.Name}
			if i.CreateInNS {
				attrs.Namespace = netlink.NsPid(pid)
			}
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer}); err != nil {
				return fmt.Errorf("interface %s: creating veth with peer %s: %w", i.Name, peer, err)
			}
			if !i.CreateInNS {
				if err := moveInto(i.Name, pid); err != nil {
					return err
				}
			}
			l, err := netlink.LinkByName(peer)
			if err != nil {
				return fmt.Errorf("interface %s: %w", peer, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("interface %s: %w", peer, err)
			}
		case "":
			if err := moveInto(i.Name, pid); err != nil {
				return err
			}
		default:
			return fmt.Errorf("interface %s: unknown add %q (want veth)", i.Name, i.Add)
		}
	}
	return nil
}

// moveInto moves the host's interface name into the network namespace
// of the process pid.
func moveInto(name string, pid int) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if err := netlink.LinkSetNsPid(l, pid); err != nil {
		return fmt.Errorf("interface %s: moving into the container: %w", name, err)
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
