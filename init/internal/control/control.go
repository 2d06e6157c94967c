// Package control is the protocol between init and keel-ctl: JSON lines
// over the unix socket layout.ControlSocket. A client sends one Request
// line; init answers with Response lines, one for every command but
// `logs -f`, which streams Data lines until the client hangs up.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/keelos/keel/init/internal/supervisor"
	"github.com/keelos/keel/internal/layout"
)

// SocketPath is where init listens.
const SocketPath = layout.ControlSocket

// Request is one command.
type Request struct {
	Cmd    string `json:"cmd"` // ps, logs, restart, stop, start, poweroff, reboot
	Name   string `json:"name,omitempty"`
	Follow bool   `json:"follow,omitempty"`
}

// Response is one answer line.
type Response struct {
	Error    string              `json:"error,omitempty"`
	Services []supervisor.Status `json:"services,omitempty"`
	Data     string              `json:"data,omitempty"`
}

// Handler is what init exposes to the socket.
type Handler interface {
	Status() []supervisor.Status
	// Logs returns a service's buffered output and, when follow is set, a
	// channel of later output and a function ending the subscription.
	Logs(name string, follow bool) (snapshot []byte, more <-chan []byte, cancel func(), err error)
	Start(name string) error
	Stop(name string) error
	Restart(name string) error
	Poweroff()
	Reboot()
}

// Listen opens the socket at path, replacing a stale one.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// Serve answers connections on ln until it is closed.
func Serve(ln net.Listener, h Handler, logf func(string, ...any)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control: %w", err)
		}
		go serveConn(c, h, logf)
	}
}

func serveConn(c net.Conn, h Handler, logf func(string, ...any)) {
	defer c.Close()
	defer func() {
		if p := recover(); p != nil {
			logf("control: recovered panic: %v\n%s", p, debug.Stack())
		}
	}()
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req Request
	enc := json.NewEncoder(c)
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	reply := func(err error) {
		if err != nil {
			enc.Encode(Response{Error: err.Error()})
			return
		}
		enc.Encode(Response{})
	}
	switch req.Cmd {
	case "ps":
		enc.Encode(Response{Services: h.Status()})
	case "start":
		reply(h.Start(req.Name))
	case "stop":
		reply(h.Stop(req.Name))
	case "restart":
		reply(h.Restart(req.Name))
	case "poweroff":
		reply(nil)
		h.Poweroff()
	case "reboot":
		reply(nil)
		h.Reboot()
	case "logs":
		snap, more, cancel, err := h.Logs(req.Name, req.Follow)
		if err != nil {
			reply(err)
			return
		}
		if err := enc.Encode(Response{Data: string(snap)}); err != nil || more == nil {
			if cancel != nil {
				cancel()
			}
			return
		}
		defer cancel()
		// Notice the client going away even when the service is quiet.
		gone := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(gone) }()
		for {
			select {
			case b, ok := <-more:
				if !ok {
					return
				}
				if err := enc.Encode(Response{Data: string(b)}); err != nil {
					return
				}
			case <-gone:
				return
			}
		}
	default:
		reply(fmt.Errorf("unknown command %q", req.Cmd))
	}
}

// Call sends req to the socket at path and calls each for every response
// line until the server closes the connection or each returns an error.
func Call(path string, req Request, each func(Response) error) error {
	c, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("connecting to init: %w", err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("sending to init: %w", err)
	}
	dec := json.NewDecoder(c)
	for {
		var r Response
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading from init: %w", err)
		}
		if r.Error != "" {
			return errors.New(r.Error)
		}
		if err := each(r); err != nil {
			return err
		}
	}
}
