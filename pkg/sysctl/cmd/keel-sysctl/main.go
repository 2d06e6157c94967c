// keel-sysctl applies sysctl.d(5) files: /etc/sysctl.d/*.conf (the host's,
// bound in) over the package's defaults in /usr/lib/sysctl.d, a file name
// in /etc hiding the same name in /usr/lib.
package main

import (
	"flag"
	"log"

	"github.com/keelos/keel/pkg/sysctl/internal/sysctl"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-sysctl: ")
	procSys := flag.String("proc", "/proc/sys", "where sysctl keys are written")
	flag.Parse()
	dirs := flag.Args()
	if len(dirs) == 0 {
		dirs = []string{"/etc/sysctl.d", "/usr/lib/sysctl.d"}
	}
	settings, err := sysctl.Load(dirs...)
	if err != nil {
		log.Fatal(err)
	}
	if err := sysctl.Apply(*procSys, settings); err != nil {
		log.Fatal(err)
	}
	log.Printf("applied %d settings", len(settings))
}
