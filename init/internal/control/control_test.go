package control

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelos/keel/init/internal/logring"
	"github.com/keelos/keel/init/internal/supervisor"
)

type fake struct {
	mu      sync.Mutex
	ring    *logring.Ring
	calls   []string
	powered chan string
}

func (f *fake) Status() []supervisor.Status {
	return []supervisor.Status{{Name: "sshd", State: "running", Pid: 42, Restarts: 1, Uptime: 3 * time.Second}}
}
func (f *fake) Logs(name string, follow bool) ([]byte, <-chan []byte, func(), error) {
	if name != "sshd" {
		return nil, nil, nil, errors.New("no such service")
	}
	if !follow {
		return f.ring.Bytes(), nil, nil, nil
	}
	snap, more, cancel := f.ring.Follow()
	return snap, more, cancel, nil
}
func (f *fake) record(s string) error {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
	return nil
}
func (f *fake) Start(n string) error { return f.record("start " + n) }
func (f *fake) Stop(n string) error  { return f.record("stop " + n) }
func (f *fake) Restart(n string) error {
	if n != "sshd" {
		return errors.New("no such service")
	}
	return f.record("restart " + n)
}
func (f *fake) Poweroff() { f.powered <- "poweroff" }
func (f *fake) Reboot()   { f.powered <- "reboot" }

func TestProtocol(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "init.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := &fake{ring: logring.NewRing(1024), powered: make(chan string, 1)}
	f.ring.Write([]byte("line one\n"))
	go Serve(ln, f, t.Logf)

	var got []supervisor.Status
	if err := Call(sock, Request{Cmd: "ps"}, func(r Response) error { got = r.Services; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pid != 42 || got[0].Uptime != 3*time.Second {
		t.Errorf("ps = %+v", got)
	}
	if err := Call(sock, Request{Cmd: "restart", Name: "sshd"}, func(Response) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := Call(sock, Request{Cmd: "restart", Name: "nope"}, func(Response) error { return nil }); err == nil || !strings.Contains(err.Error(), "no such") {
		t.Errorf("restart nope: %v", err)
	}
	var logs strings.Builder
	Call(sock, Request{Cmd: "logs", Name: "sshd"}, func(r Response) error { logs.WriteString(r.Data); return nil })
	if logs.String() != "line one\n" {
		t.Errorf("logs = %q", logs.String())
	}

	// logs -f: the snapshot, then a later write, then the client hangs up.
	stop := errors.New("enough")
	var followed strings.Builder
	done := make(chan error)
	go func() {
		done <- Call(sock, Request{Cmd: "logs", Name: "sshd", Follow: true}, func(r Response) error {
			followed.WriteString(r.Data)
			if strings.Contains(followed.String(), "line two") {
				return stop
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond)
	f.ring.Write([]byte("line two\n"))
	if err := <-done; err != stop || followed.String() != "line one\nline two\n" {
		t.Errorf("follow: %v %q", err, followed.String())
	}
	if err := Call(sock, Request{Cmd: "poweroff"}, func(Response) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if p := <-f.powered; p != "poweroff" {
		t.Errorf("handler got %s", p)
	}
	if err := Call(sock, Request{Cmd: "dance"}, func(Response) error { return nil }); err == nil {
		t.Error("unknown command: want an error")
	}
}
