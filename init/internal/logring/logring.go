// Package logring keeps a container's output: an in-memory ring buffer
// that keel-ctl reads and follows, a log file rotated at a size limit,
// and a line-prefixing writer for the console.
package logring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Ring holds the last Size bytes written to it.
type Ring struct {
	mu   sync.Mutex
	buf  []byte
	size int
	subs map[int]chan []byte
	next int
}

// NewRing makes a ring keeping size bytes.
func NewRing(size int) *Ring {
	return &Ring{size: size, subs: map[int]chan []byte{}}
}

// Write keeps p (its tail if p is larger than the ring) and passes it to
// followers; a follower too slow to keep up loses data rather than
// blocking the container.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.size; over > 0 {
		r.buf = append(r.buf[:0:0], r.buf[over:]...)
	}
	for _, ch := range r.subs {
		select {
		case ch <- append([]byte(nil), p...):
		default:
		}
	}
	return len(p), nil
}

// Bytes is a copy of what the ring holds.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...)
}

// Follow returns the current contents and a channel of later writes,
// atomically, so nothing is lost or repeated between the two. cancel
// ends the subscription and closes the channel.
func (r *Ring) Follow() (snapshot []byte, writes <-chan []byte, cancel func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.next
	r.next++
	ch := make(chan []byte, 256)
	r.subs[id] = ch
	var once sync.Once
	return append([]byte(nil), r.buf...), ch, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs, id)
			close(ch)
			r.mu.Unlock()
		})
	}
}

// RotatingFile appends to a file and, when it reaches Max bytes, renames
// it to path.1 (replacing the previous old file) and starts a new one.
type RotatingFile struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

// OpenRotating opens (appending) the log at path, rotating at max bytes.
func OpenRotating(path string, max int64) (*RotatingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	r := &RotatingFile{path: path, max: max}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("log %s: %w", r.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log %s: %w", r.path, err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first when p would pass the limit.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, errors.New("log closed")
	}
	if r.size > 0 && r.size+int64(len(p)) > r.max {
		r.f.Close()
		r.f = nil
		if err := os.Rename(r.path, r.path+".1"); err != nil {
			return 0, fmt.Errorf("rotating log %s: %w", r.path, err)
		}
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// Close closes the file.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Prefixer writes whole lines to W, each preceded by Prefix; a partial
// line waits for its end (or Flush).
type Prefixer struct {
	mu      sync.Mutex
	W       io.Writer
	Prefix  string
	partial []byte
}

func (p *Prefixer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(p.Prefix), p.partial[:i+1]...)
		p.partial = p.partial[i+1:]
		if _, err := p.W.Write(line); err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

// Flush writes a pending partial line, ended with a newline.
func (p *Prefixer) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.partial) == 0 {
		return nil
	}
	line := append(append([]byte(p.Prefix), p.partial...), '\n')
	p.partial = nil
	_, err := p.W.Write(line)
	return err
}

// Sink fans one container's output out to its ring, its file and,
// optionally, the console. Errors of the file or console never stop the
// others: logging must not block a service.
type Sink struct {
	Ring    *Ring
	File    *RotatingFile // may be nil
	Console *Prefixer     // may be nil
}

func (s *Sink) Write(p []byte) (int, error) {
	s.Ring.Write(p)
	if s.File != nil {
		s.File.Write(p)
	}
	if s.Console != nil {
		s.Console.Write(p)
	}
	return len(p), nil
}

// Pump copies r into the sink until r ends.
func (s *Sink) Pump(r io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.Write(buf[:n])
		}
		if err != nil {
			if s.Console != nil {
				s.Console.Flush()
			}
			return
		}
	}
}
