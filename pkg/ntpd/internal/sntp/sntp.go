// Package sntp is a small SNTPv4 client (RFC 4330): one request, one
// answer, the clock offset and round-trip delay computed from the four
// timestamps.
package sntp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// ntpEpoch is 1900-01-01, where NTP timestamps start.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// Timestamp converts t to the 64-bit NTP format (seconds, 2^-32 fractions).
func Timestamp(t time.Time) uint64 {
	d := t.Sub(ntpEpoch)
	sec := uint64(d / time.Second)
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// Time converts an NTP timestamp back.
func Time(ts uint64) time.Time {
	sec := time.Duration(ts>>32) * time.Second
	frac := time.Duration((ts & 0xffffffff) * uint64(time.Second) >> 32)
	return ntpEpoch.Add(sec + frac)
}

// Result is one answer.
type Result struct {
	Server  string
	Offset  time.Duration // add to the local clock to get the server's time
	Delay   time.Duration // round trip, minus the server's processing
	Stratum uint8
}

// Query asks one server (host:port) for the time. now is the local clock
// (time.Now in production); it is a parameter so the tests can pretend the
// local clock is off.
func Query(ctx context.Context, server string, now func() time.Time) (Result, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return Result{}, fmt.Errorf("sntp %s: %w", server, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
	}

	req := make([]byte, 48)
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, client
	t1 := now()
	sent := Timestamp(t1)
	binary.BigEndian.PutUint64(req[40:], sent)
	if _, err := conn.Write(req); err != nil {
		return Result{}, fmt.Errorf("sntp %s: %w", server, err)
	}
	resp := make([]byte, 128)
	for {
		n, err := conn.Read(resp)
		if err != nil {
			return Result{}, fmt.Errorf("sntp %s: %w", server, err)
		}
		t4 := now()
		r, err := parse(resp[:n], sent, t1, t4)
		if errors.Is(err, errStale) {
			continue // an answer to an earlier request: wait for ours
		}
		if err != nil {
			return Result{}, fmt.Errorf("sntp %s: %w", server, err)
		}
		r.Server = server
		return r, nil
	}
}

var errStale = errors.New("answer to another request")

func parse(b []byte, sent uint64, t1, t4 time.Time) (Result, error) {
	if len(b) < 48 {
		return Result{}, fmt.Errorf("short answer (%d bytes)", len(b))
	}
	if binary.BigEndian.Uint64(b[24:]) != sent {
		return Result{}, errStale
	}
	leap, mode, stratum := b[0]>>6, b[0]&7, b[1]
	switch {
	case mode != 4:
		return Result{}, fmt.Errorf("answer mode %d, want 4 (server)", mode)
	case stratum == 0:
		return Result{}, fmt.Errorf("kiss-o'-death %q", b[12:16])
	case stratum > 15 || leap == 3:
		return Result{}, errors.New("server not synchronised")
	}
	rx, tx := binary.BigEndian.Uint64(b[32:]), binary.BigEndian.Uint64(b[40:])
	if tx == 0 {
		return Result{}, errors.New("answer has no transmit time")
	}
	t2, t3 := Time(rx), Time(tx)
	return Result{
		Offset:  (t2.Sub(t1) + t3.Sub(t4)) / 2,
		Delay:   t4.Sub(t1) - t3.Sub(t2),
		Stratum: stratum,
	}, nil
}
