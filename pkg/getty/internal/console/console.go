// Package console finds the machine's consoles and runs a login session on
// a terminal as its controlling tty, again each time it ends.
package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Find returns the device paths to run sessions on. active is the
// content of /sys/class/tty/console/active (the consoles of the kernel
// command line, e.g. "ttyS0 tty0"); exists reports whether a device node
// is present. tty0 stands for the current virtual terminal, so a session
// goes to tty1, and only when tty0 is an active console (a machine with a
// real display). With no active list, the first serial port present is
// used.
func Find(active string, exists func(string) bool) []string {
	var out []string
	add := func(dev string) {
		p := "/dev/" + dev
		for _, o := range out {
			if o == p {
				return
			}
		}
		if exists(p) {
			out = append(out, p)
		}
	}
	for _, name := range strings.Fields(active) {
		switch {
		case name == "tty0":
			add("tty1")
		default:
			add(name)
		}
	}
	if len(out) == 0 {
		for _, dev := range []string{"ttyS0", "ttyAMA0", "hvc0"} {
			if add(dev); len(out) > 0 {
				break
			}
		}
	}
	return out
}

// Session runs argv with the terminal at dev as stdin, stdout, stderr and
// controlling tty, in a new session, and waits for it to end.
func Session(ctx context.Context, dev string, argv, env []string) error {
	tty, err := os.OpenFile(dev, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("session on %s: %w", dev, err)
	}
	defer tty.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.Env = env
	cmd.Dir = "/"
	if home := lookup(env, "HOME"); home != "" {
		if fi, err := os.Stat(home); err == nil && fi.IsDir() {
			cmd.Dir = home
		}
	}
	// Setsid then TIOCSCTTY on fd 0: job control and ^C work in the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("session on %s: %s: %w", dev, filepath.Base(argv[0]), err)
	}
	return nil
}

func lookup(env []string, key string) string {
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Respawn runs sessions on dev until ctx ends, waiting a little longer
// each time one ends within seconds, so a broken tty or shell does not
// spin.
func Respawn(ctx context.Context, dev string, argv, env []string, logf func(string, ...any)) {
	delay := time.Duration(0)
	for ctx.Err() == nil {
		start := time.Now()
		if err := Session(ctx, dev, argv, env); err != nil {
			logf("%v", err)
		}
		if time.Since(start) > 10*time.Second {
			delay = 0
		} else {
			delay = min(max(2*delay, 250*time.Millisecond), 30*time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}
