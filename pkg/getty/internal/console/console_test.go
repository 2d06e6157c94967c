package console

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFind(t *testing.T) {
	present := map[string]bool{"/dev/ttyS0": true, "/dev/tty1": true, "/dev/ttyAMA0": true}
	exists := func(p string) bool { return present[p] }
	for _, c := range []struct {
		active string
		want   []string
	}{
		{"ttyS0 tty0\n", []string{"/dev/ttyS0", "/dev/tty1"}},
		{"tty0 ttyS0 ttyS0\n", []string{"/dev/tty1", "/dev/ttyS0"}},
		{"ttyAMA0\n", []string{"/dev/ttyAMA0"}},
		{"ttyS3\n", []string{"/dev/ttyS0"}}, // listed but absent: fall back
		{"", []string{"/dev/ttyS0"}},
	} {
		if got := Find(c.active, exists); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Find(%q) = %v, want %v", c.active, got, c.want)
		}
	}
	if got := Find("", func(p string) bool { return p == "/dev/ttyAMA0" }); !reflect.DeepEqual(got, []string{"/dev/ttyAMA0"}) {
		t.Errorf("arm64 fallback: %v", got)
	}
}

// openPTY returns a pseudo-terminal's master and the path of its slave.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

func TestSessionGetsControllingTTY(t *testing.T) {
	master, slave := openPTY(t)
	got := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 256)
		for {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil || strings.Contains(b.String(), "done") {
				got <- b.String()
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// /dev/tty opens the controlling terminal: it fails without one. The
	// session leader's pid equals its session id after setsid.
	script := `echo "ctty:$(cat /proc/self/stat | cut -d' ' -f7)" > /dev/tty && echo "home:$(pwd)" && echo done`
	if err := Session(ctx, slave, []string{"/bin/sh", "-c", script}, []string{"PATH=/usr/bin:/bin", "HOME=/tmp"}); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-got:
		if !strings.Contains(out, "ctty:") || strings.Contains(out, "ctty:0") || !strings.Contains(out, "home:/tmp") {
			t.Errorf("output %q", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no output on the terminal")
	}
}

func TestRespawnRunsAgainUntilCancelled(t *testing.T) {
	master, slave := openPTY(t)
	go func() {
		buf := make([]byte, 256)
		for {
			if _, err := master.Read(buf); err != nil {
				return
			}
		}
	}()
	count := t.TempDir() + "/count"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Respawn(ctx, slave, []string{"/bin/sh", "-c", "echo x >> " + count}, nil, t.Logf)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(count)
		if strings.Count(string(b), "x") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d sessions", strings.Count(string(b), "x"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Respawn did not stop")
	}
}
