package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// qmp runs one QMP command without arguments on a fresh connection. QEMU
// creates the socket shortly after it starts, so the dial is retried.
func (m *Machine) qmp(command string) error {
	sock := filepath.Join(m.dir, "qmp.sock")
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		conn, err = net.DialTimeout("unix", sock, time.Second)
		if err == nil {
			break
		}
		select {
		case <-m.exited:
			return errors.New("QEMU has exited")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connect to QMP: %w", err)
		}
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	// The greeting, then capabilities negotiation, then the command.
	if _, err := qmpReply(r); err != nil {
		return fmt.Errorf("QMP greeting: %w", err)
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, "{\"execute\":%q}\n", c); err != nil {
			return fmt.Errorf("QMP %s: %w", c, err)
		}
		if c == "quit" {
			// QEMU may close the socket before or after it answers.
			_, _ = qmpReply(r)
			return nil
		}
		if _, err := qmpReply(r); err != nil {
			return fmt.Errorf("QMP %s: %w", c, err)
		}
	}
	return nil
}

// qmpReply reads messages until a greeting, a return or an error,
// skipping asynchronous events.
func qmpReply(r *bufio.Reader) (json.RawMessage, error) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		var msg struct {
			QMP    json.RawMessage `json:"QMP"`
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return nil, fmt.Errorf("bad QMP message %q: %w", line, err)
		}
		switch {
		case msg.Error != nil:
			return nil, fmt.Errorf("%s: %s", msg.Error.Class, msg.Error.Desc)
		case msg.Return != nil:
			return msg.Return, nil
		case msg.QMP != nil:
			return msg.QMP, nil
		}
	}
}
