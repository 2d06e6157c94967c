package logring

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRingKeepsTheTail(t *testing.T) {
	r := NewRing(8)
	r.Write([]byte("0123456"))
	r.Write([]byte("789ab"))
	if got := string(r.Bytes()); got != "456789ab" {
		t.Errorf("ring = %q, want %q", got, "456789ab")
	}
	r.Write([]byte("this is longer than eight"))
	if got := string(r.Bytes()); got != "an eight" {
		t.Errorf("ring = %q", got)
	}
}

func TestFollowSeesSnapshotThenWrites(t *testing.T) {
	r := NewRing(64)
	r.Write([]byte("old\n"))
	snap, ch, cancel := r.Follow()
	r.Write([]byte("new\n"))
	if string(snap) != "old\n" || string(<-ch) != "new\n" {
		t.Errorf("snapshot %q", snap)
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	r.Write([]byte("after\n")) // must not panic on the closed channel
}

func TestRotatingFileKeepsOneOldFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log", "svc.log")
	f, err := OpenRotating(p, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"aaaaaa\n", "bbbbbb\n", "cccccc\n"} {
		if _, err := f.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	cur, _ := os.ReadFile(p)
	old, _ := os.ReadFile(p + ".1")
	if string(cur) != "cccccc\n" || string(old) != "bbbbbb\n" {
		t.Errorf("current %q old %q", cur, old)
	}
}

func TestPrefixerWritesWholeLines(t *testing.T) {
	var out bytes.Buffer
	p := &Prefixer{W: &out, Prefix: "[sshd] "}
	p.Write([]byte("one\ntw"))
	p.Write([]byte("o\nthree"))
	p.Flush()
	if want := "[sshd] one\n[sshd] two\n[sshd] three\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestSinkPump(t *testing.T) {
	var console bytes.Buffer
	s := &Sink{Ring: NewRing(1024), Console: &Prefixer{W: &console, Prefix: "[x] "}}
	s.Pump(strings.NewReader("hello\nworld"))
	if string(s.Ring.Bytes()) != "hello\nworld" || console.String() != "[x] hello\n[x] world\n" {
		t.Errorf("ring %q console %q", s.Ring.Bytes(), console.String())
	}
}
