package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/init/internal/control"
	"github.com/keelos/keel/init/internal/logring"
	"github.com/keelos/keel/init/internal/supervisor"
	"github.com/keelos/keel/internal/layout"
)

// The init binary, started through a link named keel-ctl as the image's
// /usr/bin/keel-ctl starts it, is the control client: it prints its
// usage, and it asks init's socket and prints the answers, with init's
// own handler on the other end.
func TestInitStartedAsKeelCtlIsTheClient(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, layout.Init)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctl := filepath.Join(dir, layout.CtlName)
	if err := os.Symlink(layout.Init, ctl); err != nil {
		t.Fatal(err)
	}

	in := &initd{
		logf:     t.Logf,
		sup:      supervisor.New(supervisor.Config{Logf: t.Logf}),
		shutdown: make(chan bool, 1),
		sinks:    map[string]*logring.Sink{"web": {Ring: logring.NewRing(ringSize)}},
	}
	in.sinks["web"].Ring.Write([]byte("listening on :80\n"))
	sock := filepath.Join(dir, "init.sock")
	ln, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go control.Serve(ln, handler{in}, t.Logf)

	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(ctl, args...)
		cmd.Env = append(os.Environ(), "KEEL_CTL_SOCKET="+sock)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			code = exit.ExitCode()
		default:
			t.Fatalf("keel-ctl %q: %v", args, err)
		}
		return o.String(), e.String(), code
	}

	if _, stderr, code := run(); code != 2 || !strings.HasPrefix(stderr, "usage: keel-ctl") {
		t.Errorf("no command: exit %d, stderr %q; want 2 and the usage", code, stderr)
	}
	if stdout, stderr, code := run("ps"); code != 0 || !strings.HasPrefix(stdout, "NAME") {
		t.Errorf("ps: exit %d, stdout %q, stderr %q; want the table's header", code, stdout, stderr)
	}
	if stdout, stderr, code := run("logs", "web"); code != 0 || stdout != "listening on :80\n" {
		t.Errorf("logs web: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, stderr, code := run("logs", "db"); code != 1 || !strings.Contains(stderr, "no logs for db") {
		t.Errorf("logs db: exit %d, stderr %q; want 1 and init's error", code, stderr)
	}
	if _, stderr, code := run("poweroff"); code != 0 {
		t.Fatalf("poweroff: exit %d, stderr %q", code, stderr)
	}
	select {
	case reboot := <-in.shutdown:
		if reboot {
			t.Error("poweroff asked init to reboot")
		}
	case <-time.After(10 * time.Second):
		t.Error("poweroff did not reach init")
	}
}
