package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Options control a run.
type Options struct {
	CarrierTimeout time.Duration // how long to wait for links to get a carrier
	RequestTimeout time.Duration // per DHCP exchange attempt
	Retries        int
	Resolver       *Resolver
	Hostname       string // sent as option 12 when set
	Log            *log.Logger
}

// Links brings every non-loopback physical link up and returns those
// that have a carrier within timeout, sorted by name. Bringing all up
// before waiting lets their carriers settle in parallel.
func Links(timeout time.Duration) ([]netlink.Link, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var names []string
	for _, l := range all {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || l.Type() != "device" {
			continue
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("set %s up: %w", a.Name, err)
		}
		names = append(names, a.Name)
	}
	sort.Strings(names)
	deadline := time.Now().Add(timeout)
	var up []netlink.Link
	for {
		up = up[:0]
		for _, n := range names {
			l, err := netlink.LinkByName(n)
			if err != nil {
				continue
			}
			if hasCarrier(l) {
				up = append(up, l)
			}
		}
		if len(up) == len(names) || time.Now().After(deadline) {
			return up, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasCarrier(l netlink.Link) bool {
	a := l.Attrs()
	if a.OperState == netlink.OperUp {
		return true
	}
	// Some virtual NICs never report an operstate.
	return a.OperState == netlink.OperUnknown && a.RawFlags&unix.IFF_RUNNING != 0
}

// Lease is one interface's current lease.
type Lease struct {
	Iface  string
	Lease  *nclient4.Lease
	Timers Timers
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log.Printf(format, args...)
	}
}

func (o *Options) client(iface string) (*nclient4.Client, error) {
	c, err := nclient4.New(iface, nclient4.WithTimeout(o.RequestTimeout), nclient4.WithRetry(o.Retries))
	if err != nil {
		return nil, fmt.Errorf("%s: dhcp client: %w", iface, err)
	}
	return c, nil
}

func (o *Options) modifiers() []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(
		dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
		dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionClasslessStaticRoute,
		dhcpv4.OptionNTPServers, dhcpv4.OptionInterfaceMTU,
	)}
	if o.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(o.Hostname)))
	}
	return mods
}

// Acquire runs a full DISCOVER/OFFER/REQUEST/ACK exchange on link and
// configures the result.
func (o *Options) Acquire(ctx context.Context, link netlink.Link) (*Lease, error) {
	name := link.Attrs().Name
	c, err := o.client(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	l, err := c.Request(ctx, o.modifiers()...)
	if err != nil {
		return nil, fmt.Errorf("%s: dhcp request: %w", name, err)
	}
	return o.apply(link, l)
}

// Renew asks the server that granted cur to extend it, and configures
// the answer.
func (o *Options) Renew(ctx context.Context, link netlink.Link, cur *Lease) (*Lease, error) {
	name := link.Attrs().Name
	c, err := o.client(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	l, err := c.Renew(ctx, cur.Lease, o.modifiers()...)
	if err != nil {
		return nil, fmt.Errorf("%s: dhcp renew: %w", name, err)
	}
	return o.apply(link, l)
}

func (o *Options) apply(link netlink.Link, l *nclient4.Lease) (*Lease, error) {
	name := link.Attrs().Name
	p := dhclient.NewPacket4(link, l.ACK)
	if err := configure(link, p); err != nil {
		return nil, fmt.Errorf("%s: configure: %w", name, err)
	}
	if o.Resolver != nil {
		ns, search, domain := p.GatherDNSSettings()
		if err := o.Resolver.Set(name, DNS{Servers: ns, Search: search, Domain: domain}); err != nil {
			return nil, err
		}
	}
	t := TimersOf(l.ACK)
	o.logf("%s: %s/%s from %s, lease %v", name, l.ACK.YourIPAddr, maskBits(l.ACK), l.ACK.ServerIdentifier(), t.Lease)
	return &Lease{Iface: name, Lease: l, Timers: t}, nil
}

func maskBits(ack *dhcpv4.DHCPv4) string {
	ones, _ := net.IPMask(ack.SubnetMask()).Size()
	return fmt.Sprint(ones)
}

// Keep holds link's lease for as long as ctx lives: it renews at T1,
// retries until T2, rebinds with a full exchange from T2 on, and starts
// over when a lease expires or a server refuses it.
func (o *Options) Keep(ctx context.Context, link netlink.Link, cur *Lease) {
	name := link.Attrs().Name
	for {
		if cur == nil {
			l, err := o.Acquire(ctx, link)
			if err != nil {
				o.logf("%v", err)
				if !sleep(ctx, 30*time.Second) {
					return
				}
				continue
			}
			cur = l
		}
		granted := cur.Lease.CreationTime
		if !sleepUntil(ctx, granted.Add(cur.Timers.T1)) {
			return
		}
		for cur != nil {
			now := time.Now()
			var next *Lease
			var err error
			switch {
			case now.Before(granted.Add(cur.Timers.T2)):
				next, err = o.Renew(ctx, link, cur)
			case now.Before(granted.Add(cur.Timers.Lease)):
				next, err = o.Acquire(ctx, link)
			default:
				o.logf("%s: lease expired", name)
				cur = nil
				continue
			}
			var nak *nclient4.ErrNak
			if errors.As(err, &nak) {
				o.logf("%s: server refused the lease, starting over", name)
				cur = nil
				break
			}
			if err == nil {
				cur = next
				break
			}
			o.logf("%v", err)
			deadline := granted.Add(cur.Timers.T2)
			if !now.Before(deadline) {
				deadline = granted.Add(cur.Timers.Lease)
			}
			if !sleep(ctx, retryDelay(deadline.Sub(now))) {
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	return sleep(ctx, time.Until(at))
}

// Names lists the links' names, for messages.
func Names(links []netlink.Link) string {
	var n []string
	for _, l := range links {
		n = append(n, l.Attrs().Name)
	}
	return strings.Join(n, " ")
}

// configure sets the address and routes of a lease. dhclient's own
// Packet4.Configure does the same but also writes /etc/resolv.conf in
// place, non-atomically and with this interface's servers only, which is
// the Resolver's job here.
func configure(link netlink.Link, p *dhclient.Packet4) error {
	ipnet := p.Lease()
	if ipnet == nil {
		return errors.New("lease has no address")
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("add address %s: %w", ipnet, err)
	}
	idx := link.Attrs().Index
	// RFC 3442: classless static routes, when present, replace the
	// router option.
	if routes := p.P.ClasslessStaticRoute(); routes != nil {
		for _, r := range routes {
			nr := &netlink.Route{LinkIndex: idx, Dst: r.Dest, Gw: r.Router}
			if r.Router == nil || r.Router.Equal(net.IPv4zero) {
				nr.Gw, nr.Scope = nil, netlink.SCOPE_LINK
			}
			if err := netlink.RouteReplace(nr); err != nil {
				return fmt.Errorf("route %s: %w", nr, err)
			}
		}
		return nil
	}
	if gw := p.P.Router(); len(gw) > 0 {
		nr := &netlink.Route{LinkIndex: idx, Gw: gw[0]}
		if err := netlink.RouteReplace(nr); err != nil {
			return fmt.Errorf("route %s: %w", nr, err)
		}
	}
	return nil
}
