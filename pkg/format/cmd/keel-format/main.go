// keel-format formats an empty data disk on first boot:
//
//	keel-format [-type ext4] [-label L] [DEVICE]
//
// Without DEVICE it picks the first virtio disk with no partitions and no
// data. A device that holds anything is left alone, and that is success:
// it is what every boot after the first sees.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/keelos/keel/internal/blockdev"
	"github.com/keelos/keel/pkg/format/internal/format"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-format: ")
	typ := flag.String("type", "ext4", "filesystem type (ext4)")
	label := flag.String("label", "", "filesystem label")
	flag.Parse()
	if flag.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "usage: keel-format [-type ext4] [-label L] [DEVICE]")
		os.Exit(2)
	}
	dev := flag.Arg(0)
	if dev == "" {
		devs, err := blockdev.List("/sys", "/dev")
		if err != nil {
			log.Fatal(err)
		}
		d, err := format.PickDisk(devs)
		if errors.Is(err, format.ErrNoDisk) {
			log.Print("no empty virtio disk: nothing to format")
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		dev = d.Path
	}
	err := format.Format(dev, format.Options{Type: *typ, Label: *label})
	switch {
	case errors.Is(err, format.ErrInUse):
		log.Printf("left alone: %v", err)
	case err != nil:
		log.Fatal(err)
	default:
		log.Printf("formatted %s as %s (label %q)", dev, *typ, *label)
	}
}
