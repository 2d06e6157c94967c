// keel-mount mounts a data filesystem for other containers:
//
//	keel-mount [-timeout 10s] (-label L | DEVICE) PATH
//
// The mount is made shared; the container binds the parent of PATH with
// rshared so the mount reaches the host and every container binding it.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/keelos/keel/pkg/mount/internal/mount"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-mount: ")
	label := flag.String("label", "", "find the device by filesystem label")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for the labelled device")
	flag.Parse()
	var dev, path string
	switch {
	case *label != "" && flag.NArg() == 1:
		path = flag.Arg(0)
		d, err := mount.FindByLabel("/sys", "/dev", *label, *timeout)
		if err != nil {
			log.Fatal(err)
		}
		dev = d
	case *label == "" && flag.NArg() == 2:
		dev, path = flag.Arg(0), flag.Arg(1)
	default:
		fmt.Fprintln(os.Stderr, "usage: keel-mount [-timeout D] (-label L | DEVICE) PATH")
		os.Exit(2)
	}
	if err := mount.Mount(dev, path); err != nil {
		log.Fatal(err)
	}
	log.Printf("mounted %s on %s", dev, path)
}
