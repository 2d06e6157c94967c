// Package dhcp runs DHCPv4 on the machine's interfaces with u-root's
// dhclient and insomniacslk's nclient4, adding what they leave to their
// caller: waiting for carrier, renewal at T1 and rebinding at T2, and one
// resolv.conf merged from every interface.
package dhcp

import (
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Timers are a lease's deadlines, counted from when it was granted.
type Timers struct {
	T1, T2, Lease time.Duration
}

// defaultLease is assumed when a server sends no lease time.
const defaultLease = time.Hour

// TimersOf reads the lease, renewal (T1) and rebinding (T2) times of an
// ACK, with RFC 2131's defaults of 0.5 and 0.875 of the lease when the
// server sends none, and sane ordering enforced.
func TimersOf(ack *dhcpv4.DHCPv4) Timers {
	lease := ack.IPAddressLeaseTime(defaultLease)
	if lease <= 0 {
		lease = defaultLease
	}
	t := Timers{
		Lease: lease,
		T1:    ack.IPAddressRenewalTime(lease / 2),
		T2:    ack.IPAddressRebindingTime(lease * 7 / 8),
	}
	if t.T2 <= 0 || t.T2 > lease {
		t.T2 = lease * 7 / 8
	}
	if t.T1 <= 0 || t.T1 > t.T2 {
		t.T1 = min(lease/2, t.T2)
	}
	return t
}

// retryDelay is how long to wait before the next renewal attempt when one
// failed at now, with the next deadline at deadline: half of what is left
// (RFC 2131 4.4.5), at least a minute, never past the deadline.
func retryDelay(left time.Duration) time.Duration {
	d := left / 2
	if d < time.Minute {
		d = min(time.Minute, left)
	}
	return d
}
