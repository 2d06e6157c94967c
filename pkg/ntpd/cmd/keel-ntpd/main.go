// keel-ntpd keeps the clock in time with SNTP:
//
//	keel-ntpd [SERVER…]
//
// Servers come from the arguments, else /run/config/ntp, else
// pool.ntp.org. The first answer steps the clock when it is off by more
// than a second; later answers slew it with adjtimex. It polls every 64 s,
// doubling to 1024 s while answers come, and never exits on a failure: a
// machine without NTP access just logs and keeps trying.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/pkg/ntpd/internal/sntp"
)

const (
	minPoll   = 64 * time.Second
	maxPoll   = 1024 * time.Second
	stepLimit = time.Second
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-ntpd: ")
	config := flag.String("config", "/run/config/ntp", "file naming servers when none are given")
	once := flag.Bool("once", false, "set the clock once and exit (exit 1 if no server answered)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	poll := minPoll
	for {
		ok := syncOnce(ctx, servers(flag.Args(), *config))
		if *once {
			if !ok {
				os.Exit(1)
			}
			return
		}
		if ok {
			poll = min(2*poll, maxPoll)
		} else {
			poll = minPoll
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
	}
}

// servers is re-read each poll: metadata may write the file after start.
func servers(args []string, config string) []string {
	if len(args) > 0 {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = sntp.WithPort(a)
		}
		return out
	}
	if b, err := os.ReadFile(config); err == nil {
		if s := sntp.ParseServers(string(b)); len(s) > 0 {
			return s
		}
	}
	return []string{sntp.WithPort(sntp.DefaultServer)}
}

// syncOnce asks each server in turn and adjusts the clock from the first
// answer.
func syncOnce(ctx context.Context, servers []string) bool {
	for _, s := range servers {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := sntp.Query(qctx, s, time.Now)
		cancel()
		if err != nil {
			log.Print(err)
			continue
		}
		if err := adjust(r.Offset); err != nil {
			log.Printf("%s: offset %v: %v", s, r.Offset, err)
			return false
		}
		log.Printf("%s: stratum %d offset %v delay %v", s, r.Stratum, r.Offset, r.Delay)
		return true
	}
	return false
}

// adjust steps a clock that is far off and slews one that is close, so
// running programs never see time jump backwards by a small amount.
func adjust(offset time.Duration) error {
	if offset > stepLimit || offset < -stepLimit {
		tv := unix.NsecToTimeval(time.Now().Add(offset).UnixNano())
		return unix.Settimeofday(&tv)
	}
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: offset.Microseconds()}
	_, err := unix.Adjtimex(&tx)
	return err
}
