// keel-sshd prepares and starts OpenSSH's sshd: it generates the ed25519
// host key on first start (into $KEEL_SSHD_KEYS, default /run/keel-sshd;
// point it at a volume to keep the key across reboots), gathers the
// authorized keys of the spec (the host's /etc/ssh/authorized_keys) and of the
// metadata (/run/config/ssh/authorized_keys) into
// /run/keel-sshd/authorized_keys, and execs sshd in the foreground.
package main

import (
	"log"
	"os"
	"syscall"

	"github.com/keelos/keel/pkg/sshd/internal/sshkeys"
)

const (
	runDir   = "/run/keel-sshd"
	sshd     = "/usr/sbin/sshd"
	config   = "/etc/ssh/sshd_config"
	privsep  = "/run/sshd"
	keysFile = runDir + "/authorized_keys"
)

// keySources: the spec's file (the host's /etc/ssh is bound at /host/etc/ssh),
// one placed in the image itself, and the metadata's.
var keySources = []string{"/host/etc/ssh/authorized_keys", "/etc/ssh/authorized_keys", "/run/config/ssh/authorized_keys"}

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-sshd: ")
	keyDir := os.Getenv("KEEL_SSHD_KEYS")
	if keyDir == "" {
		keyDir = runDir
	}
	// sshd's StrictModes refuses group- or world-writable directories.
	for _, d := range []string{runDir, privsep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	hostKey, err := sshkeys.HostKey(keyDir)
	if err != nil {
		log.Fatal(err)
	}
	keys, warnings, err := sshkeys.AuthorizedKeys(keySources...)
	for _, w := range warnings {
		log.Printf("skipped: %s", w)
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := sshkeys.WriteAuthorizedKeys(keysFile, keys); err != nil {
		log.Fatal(err)
	}
	if len(keys) == 0 {
		log.Print("no authorized keys: nobody can log in until some are given")
	}
	args := append([]string{sshd, "-D", "-e", "-f", config, "-h", hostKey}, os.Args[1:]...)
	err = syscall.Exec(sshd, args, os.Environ())
	log.Fatalf("exec %s: %v", sshd, err)
}
