// keel-getty runs a session on each console and restarts it when it ends:
// a root shell (/bin/sh -l) when the container's environment has
// INSECURE=true, otherwise login(1). Consoles are those of the kernel
// command line (/sys/class/tty/console/active), else the first serial
// port.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/keelos/keel/pkg/getty/internal/console"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-getty: ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	active, _ := os.ReadFile("/sys/class/tty/console/active")
	devs := console.Find(string(active), func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	})
	if len(devs) == 0 {
		log.Fatal("no console found")
	}
	argv := []string{"/bin/login"}
	if os.Getenv("INSECURE") == "true" {
		argv = []string{"/bin/sh", "-l"}
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"USER=root",
		"LOGNAME=root",
		"SHELL=/bin/sh",
	}
	var wg sync.WaitGroup
	for _, dev := range devs {
		term := "vt100"
		if dev == "/dev/tty1" {
			term = "linux"
		}
		log.Printf("%s on %s", argv[0], dev)
		wg.Add(1)
		go func() {
			defer wg.Done()
			console.Respawn(ctx, dev, argv, append(env, "TERM="+term), log.Printf)
		}()
	}
	wg.Wait()
}
