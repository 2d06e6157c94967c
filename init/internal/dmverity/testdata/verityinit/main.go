// Command verityinit is the /init of dmverity's boot test. It loads the
// image's modules, then for each of two data disks, the image as built
// (/dev/vda) and the image with one byte of /payload flipped (/dev/vdb),
// opens a verity device with the hash disk (/dev/vdc) and the parameters
// of the keel.verity.* keys on the command line, mounts the squashfs on
// it, and reports on the console what reading /hello and /payload gives.
// Then it unmounts, removes the devices and powers off.
package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/init/internal/boot"
	"github.com/keelos/keel/init/internal/dmverity"
	"github.com/keelos/keel/internal/layout"
)

func main() {
	if err := run(); err != nil {
		fmt.Println("verity-test: error:", err)
	}
	fmt.Println("verity-test: done")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println("power off:", err)
	}
	select {}
}

func run() error {
	for _, m := range []struct{ src, dir, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dir, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	n, errs := boot.LoadModules("/" + layout.Modules)
	for _, err := range errs {
		fmt.Println("verity-test: module:", err)
	}
	fmt.Printf("verity-test: %d modules loaded\n", n)
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	c, err := dmverity.ParseCmdline(string(cmdline))
	if err != nil {
		return err
	}
	magic := make([]byte, 8)
	if f, err := os.Open(c.Hash); err != nil {
		return err
	} else if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte("verity\x00\x00")) {
		return fmt.Errorf("%s is not the hash disk (starts with %q, %v)", c.Hash, magic, err)
	}
	for _, d := range []struct{ name, dev string }{{"good", "/dev/vda"}, {"bad", "/dev/vdb"}} {
		if err := check(d.name, d.dev, c); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
	}
	return nil
}

// check opens the verity device over dev, mounts it and reads the files.
func check(name, dev string, c dmverity.Cmdline) error {
	v, err := dmverity.Open("keel-test-"+name, c.Target(dev, c.Hash))
	if err != nil {
		return err
	}
	fmt.Printf("verity-test: %s: %s opened as %s\n", name, dev, v.Path)
	mnt := "/mnt/" + name
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(v.Path, mnt, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount %s: %w", v.Path, err)
	}
	for _, f := range []string{"hello", "payload"} {
		b, err := os.ReadFile(mnt + "/" + f)
		if err != nil {
			fmt.Printf("verity-test: %s: /%s: %v\n", name, f, err)
			continue
		}
		fmt.Printf("verity-test: %s: /%s: %d bytes, sha256 %x\n", name, f, len(b), sha256.Sum256(b))
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	if err := v.Close(); err != nil {
		return err
	}
	fmt.Printf("verity-test: %s: closed\n", name)
	return nil
}
