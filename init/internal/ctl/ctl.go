// Package ctl is keel-ctl, init's control client. It is no binary of its
// own: init runs it when started as layout.CtlName (the image's
// /usr/bin/keel-ctl is a symlink to /init), so the image carries one
// static Go binary instead of two.
package ctl

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/keelos/keel/init/internal/control"
)

const usage = `usage: keel-ctl COMMAND
  ps                 list services: name, state, pid, restarts, uptime
  pid NAME           print the pid of a running service's first process
  logs NAME [-f]     print a service's recent output (-f: keep following)
  start NAME | stop NAME | restart NAME
  poweroff | reboot`

// Main runs keel-ctl with args (the command and its arguments) against
// init's socket, or the one $KEEL_CTL_SOCKET names, and returns the exit
// status: 2 for a missing command, 1 for any failure.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	sock := control.SocketPath
	if s := os.Getenv("KEEL_CTL_SOCKET"); s != "" {
		sock = s
	}
	if err := run(sock, args, stdout); err != nil {
		fmt.Fprintln(stderr, "keel-ctl:", err)
		return 1
	}
	return 0
}

func run(sock string, args []string, stdout io.Writer) error {
	req := control.Request{Cmd: args[0]}
	switch args[0] {
	case "ps":
		// The table goes out in one write: on a console that init also
		// copies service logs to, a log line can then only come before or
		// after it, never inside a row.
		var table bytes.Buffer
		tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tPID\tRESTARTS\tUPTIME")
		err := control.Call(sock, req, func(r control.Response) error {
			for _, s := range r.Services {
				pid := "-"
				if s.Pid > 0 {
					pid = fmt.Sprint(s.Pid)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\n", s.Name, s.State, pid, s.Restarts, s.Uptime.Round(time.Second))
			}
			return nil
		})
		tw.Flush()
		if _, werr := stdout.Write(table.Bytes()); err == nil {
			err = werr
		}
		return err
	case "pid":
		if len(args) != 2 {
			return fmt.Errorf("usage: keel-ctl pid NAME")
		}
		req.Cmd = "ps"
		found := false
		err := control.Call(sock, req, func(r control.Response) error {
			for _, s := range r.Services {
				if s.Name == args[1] && s.Pid > 0 {
					fmt.Fprintln(stdout, s.Pid)
					found = true
				}
			}
			return nil
		})
		if err == nil && !found {
			err = fmt.Errorf("no running service %q", args[1])
		}
		return err
	case "logs":
		if len(args) < 2 || len(args) > 3 || (len(args) == 3 && args[2] != "-f") {
			return fmt.Errorf("usage: keel-ctl logs NAME [-f]")
		}
		req.Name, req.Follow = args[1], len(args) == 3
		return control.Call(sock, req, func(r control.Response) error {
			_, err := io.WriteString(stdout, r.Data)
			return err
		})
	case "start", "stop", "restart":
		if len(args) != 2 {
			return fmt.Errorf("usage: keel-ctl %s NAME", args[0])
		}
		req.Name = args[1]
	case "poweroff", "reboot":
		if len(args) != 1 {
			return fmt.Errorf("usage: keel-ctl %s", args[0])
		}
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
	return control.Call(sock, req, func(control.Response) error { return nil })
}
