// keel-metadata gathers instance data into /run/config at boot: from a
// config drive (label cidata/CIDATA/config-2) if one is attached, else
// from the first metadata service that answers (AWS IMDSv2, GCE,
// OpenStack). It writes /run/config/{userdata,hostname,ssh/authorized_keys}
// and sets the host name. Finding nothing is normal (a plain VM) and
// exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/blockdev"
	"github.com/keelos/keel/internal/hostname"
	"github.com/keelos/keel/pkg/metadata/internal/metadata"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("keel-metadata: ")
	dir := flag.String("dir", "/run/config", "where the data is written")
	timeout := flag.Duration("timeout", 2*time.Second, "per request to a metadata service")
	noCloud := flag.Bool("no-cloud", false, "read only a config drive, never the network")
	setHostname := flag.Bool("set-hostname", true, "set the machine's host name from the data")
	flag.Parse()

	d, err := fromDrive()
	if errors.Is(err, metadata.ErrNoDrive) && !*noCloud {
		d, err = fromCloud(*timeout)
	}
	if err != nil {
		log.Printf("no instance data: %v", err)
		return
	}
	if d.Hostname != "" {
		if err := hostname.Check(d.Hostname); err != nil {
			log.Printf("ignoring the instance data's host name: %v", err)
			d.Hostname = ""
		}
	}
	if err := metadata.Write(*dir, d); err != nil {
		log.Fatal(err)
	}
	log.Printf("from %s: hostname %q, %d bytes of user data, %d ssh keys", d.Source, d.Hostname, len(d.UserData), len(d.SSHKeys))
	// No host name in the data leaves the image's (/etc/hostname, which
	// init set) as it is.
	if *setHostname && d.Hostname != "" {
		if err := unix.Sethostname([]byte(d.Hostname)); err != nil {
			log.Printf("set hostname: %v", err)
		}
	}
}

func fromDrive() (metadata.Data, error) {
	devs, err := blockdev.List("/sys", "/dev")
	if err != nil {
		return metadata.Data{}, err
	}
	dev, probe, err := metadata.FindDrive(devs)
	if err != nil {
		return metadata.Data{}, err
	}
	d, err := metadata.ReadDrive(dev.Path)
	if err == nil || probe.Kind != blockdev.VFAT {
		return d, err
	}
	// go-diskfs reads FAT32 only; small seeds are often FAT12/16, which
	// the kernel reads.
	mnt, merr := os.MkdirTemp("", "config-drive-")
	if merr != nil {
		return metadata.Data{}, merr
	}
	defer os.Remove(mnt)
	if merr := unix.Mount(dev.Path, mnt, "vfat", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); merr != nil {
		return metadata.Data{}, errors.Join(err, merr)
	}
	defer unix.Unmount(mnt, 0)
	return metadata.ReadDriveDir(mnt)
}

func fromCloud(timeout time.Duration) (metadata.Data, error) {
	c := metadata.NewClient(timeout)
	ctx := context.Background()
	var errs []error
	for _, try := range []func() (metadata.Data, error){
		func() (metadata.Data, error) { return c.AWS(ctx, metadata.AWSBase) },
		func() (metadata.Data, error) { return c.GCE(ctx, metadata.GCEBase) },
		func() (metadata.Data, error) { return c.OpenStack(ctx, metadata.OpenStackBase) },
	} {
		d, err := try()
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
	}
	return metadata.Data{}, errors.Join(errs...)
}
