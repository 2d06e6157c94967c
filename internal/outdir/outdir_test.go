package outdir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// contents maps every name in dir to its content ("/" for a directory).
func contents(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		if e.IsDir() {
			m[e.Name()] = "/"
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(data)
	}
	return m
}

func same(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("directory holds %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("directory holds %v, want %v", got, want)
		}
	}
}

type progress struct {
	mu   sync.Mutex
	msgs []string
}

func (p *progress) add(m string) { p.mu.Lock(); p.msgs = append(p.msgs, m); p.mu.Unlock() }
func (p *progress) said(sub string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// previous is an output directory holding an earlier build's set and a
// file of the user's.
func previous(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.img"), "old a")
	write(t, filepath.Join(dir, "b.json"), "old b")
	write(t, filepath.Join(dir, "notes"), "mine")
	return dir
}

func TestCommitReplacesTheSet(t *testing.T) {
	dir := previous(t)
	d, err := Open(context.Background(), dir, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(d.Staging(), "a.img"), "new a")
	write(t, filepath.Join(d.Staging(), "b.json"), "new b")
	write(t, filepath.Join(d.Staging(), "c.raw"), "new c")
	write(t, filepath.Join(d.Staging(), ".scratch"), "a temporary")
	same(t, contents(t, dir), map[string]string{"a.img": "old a", "b.json": "old b", "notes": "mine", stagingName: "/"})
	if err := d.Commit(context.Background(), []string{"a.img", "b.json", "c.raw"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	same(t, contents(t, dir), map[string]string{"a.img": "new a", "b.json": "new b", "c.raw": "new c", "notes": "mine"})
}

func TestCloseWithoutCommitLeavesThePreviousSet(t *testing.T) {
	dir := previous(t)
	d, err := Open(context.Background(), dir, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(d.Staging(), "a.img"), "half of a new a")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	same(t, contents(t, dir), map[string]string{"a.img": "old a", "b.json": "old b", "notes": "mine"})
}

func TestCommitStopsWhenCancelled(t *testing.T) {
	dir := previous(t)
	d, err := Open(context.Background(), dir, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(d.Staging(), "a.img"), "new a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Commit(ctx, []string{"a.img"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("commit: %v", err)
	}
	d.Close()
	same(t, contents(t, dir), map[string]string{"a.img": "old a", "b.json": "old b", "notes": "mine"})
}

// A build killed before its commit marker left a staging directory: the
// next Open removes it.
func TestOpenRollsBackAnUncommittedSet(t *testing.T) {
	dir := previous(t)
	staging := filepath.Join(dir, stagingName)
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(staging, "a.img"), "half")
	write(t, filepath.Join(staging, commitName+".tmp"), "a.img\n")
	var p progress
	d, err := Open(context.Background(), dir, p.add)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	same(t, contents(t, dir), map[string]string{"a.img": "old a", "b.json": "old b", "notes": "mine"})
	if !p.said("removing the partial outputs of an interrupted build") {
		t.Errorf("progress: %q", p.msgs)
	}
}

// A build killed after its commit marker, while moving (a.img moved,
// b.json not yet): the next Open finishes the move.
func TestOpenRollsForwardACommittedSet(t *testing.T) {
	dir := previous(t)
	staging := filepath.Join(dir, stagingName)
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.img"), "new a")
	write(t, filepath.Join(staging, "b.json"), "new b")
	write(t, filepath.Join(staging, commitName), "a.img\nb.json\n")
	var p progress
	d, err := Open(context.Background(), dir, p.add)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	same(t, contents(t, dir), map[string]string{"a.img": "new a", "b.json": "new b", "notes": "mine"})
	if !p.said("moving into place the 2 outputs of an interrupted build") {
		t.Errorf("progress: %q", p.msgs)
	}
}

func TestOpenRefusesADamagedMarker(t *testing.T) {
	dir := previous(t)
	staging := filepath.Join(dir, stagingName)
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(staging, commitName), "../../etc/passwd\n")
	if _, err := Open(context.Background(), dir, func(string) {}); err == nil || !strings.Contains(err.Error(), "remove "+staging) {
		t.Fatalf("open: %v", err)
	}
}

// A second build waits, saying so, until the first is done; a build
// still waiting stops when cancelled.
func TestOpenWaitsForTheBuildHoldingTheDirectory(t *testing.T) {
	dir := previous(t)
	first, err := Open(context.Background(), dir, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	var p progress
	opened := make(chan *Dir)
	go func() {
		d, err := Open(context.Background(), dir, p.add)
		if err != nil {
			t.Error(err)
		}
		opened <- d
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !p.said("waiting for the other keel build writing to it") {
		if time.Now().After(deadline) {
			t.Fatalf("the second build does not say it waits: %q", p.msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-opened:
		t.Fatal("the second build opened the directory the first holds")
	case <-time.After(300 * time.Millisecond):
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, dir, func(string) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a third, cancelled build: %v", err)
	}

	write(t, filepath.Join(first.Staging(), "a.img"), "first")
	if err := first.Commit(context.Background(), []string{"a.img"}); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := <-opened
	if got, _ := os.ReadFile(filepath.Join(dir, "a.img")); string(got) != "first" {
		t.Fatalf("a.img holds %q", got)
	}
	second.Close()
}
