// keel-dhcp configures every network interface with DHCPv4:
//
//	keel-dhcp [--oneshot] [--timeout 10s] [--resolv FILE]
//
// All non-loopback links are brought up, those with a carrier within the
// timeout get a lease, and the merged DNS settings go to
// /run/resolvconf/resolv.conf (the host's /etc/resolv.conf points there).
// --oneshot exits once every link is configured, for onboot; otherwise it
// keeps renewing the leases.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/keelos/keel/pkg/dhcpcd/internal/dhcp"
)

func main() {
	logger := log.New(os.Stderr, "keel-dhcp: ", 0)
	oneshot := flag.Bool("oneshot", false, "configure the interfaces once and exit")
	carrier := flag.Duration("timeout", 10*time.Second, "how long to wait for links to get a carrier")
	resolv := flag.String("resolv", "/run/resolvconf/resolv.conf", "resolv.conf to write")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hostname, _ := os.Hostname()
	o := &dhcp.Options{
		CarrierTimeout: *carrier,
		RequestTimeout: 5 * time.Second,
		Retries:        3,
		Resolver:       &dhcp.Resolver{Path: *resolv},
		Hostname:       hostname,
		Log:            logger,
	}
	links, err := dhcp.Links(*carrier)
	if err != nil {
		logger.Fatal(err)
	}
	if len(links) == 0 {
		logger.Print("no link has a carrier")
		if *oneshot {
			os.Exit(1)
		}
	}
	logger.Printf("links with carrier: %s", dhcp.Names(links))

	leases := make([]*dhcp.Lease, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := o.Acquire(ctx, l)
			if err != nil {
				logger.Print(err)
			}
			leases[i] = lease
		}()
	}
	wg.Wait()
	got := 0
	for _, l := range leases {
		if l != nil {
			got++
		}
	}
	if *oneshot {
		if got == 0 {
			os.Exit(1)
		}
		return
	}
	for i, l := range links {
		wg.Add(1)
		go func(l netlink.Link, cur *dhcp.Lease) {
			defer wg.Done()
			o.Keep(ctx, l, cur)
		}(l, leases[i])
	}
	wg.Wait()
}
