// Command testinit is the /init of the boot test's initramfs: it greets,
// echoes one console line, then powers off, or, with keeltest=exit on the
// kernel command line, returns so the kernel panics.
package main

import (
	"bufio"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	fmt.Println("hello from init")
	if os.Getenv("keeltest") == "exit" {
		return
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		fmt.Println("read console:", err)
	}
	fmt.Printf("init got %q\n", line)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println("power off:", err)
	}
	select {}
}
