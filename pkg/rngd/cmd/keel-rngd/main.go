// keel-rngd seeds the kernel's entropy pool from /dev/hwrng once and
// exits; with no hardware source it says so and exits 0, since that is a
// normal machine, not a failure.
package main

import (
	"errors"
	"flag"
	"log"

	"github.com/keelos/keel/pkg/rngd/internal/rng"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-rngd: ")
	src := flag.String("source", "/dev/hwrng", "hardware random number generator")
	n := flag.Int("bytes", 512, "bytes to credit")
	flag.Parse()
	b, err := rng.Read(*src, *n)
	if errors.Is(err, rng.ErrNoSource) {
		log.Printf("%v: nothing to do", err)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := rng.Add("/dev/random", b); err != nil {
		log.Fatal(err)
	}
	log.Printf("credited %d bytes from %s", len(b), *src)
}
