package ctxio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every wrapper passes calls through until the context is done and fails
// every call after.
func TestWrappersStopWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	calls := map[string]func() error{
		"Reader": func() error { _, err := Reader(ctx, strings.NewReader("abc")).Read(make([]byte, 1)); return err },
		"ReaderAt": func() error {
			_, err := ReaderAt(ctx, strings.NewReader("abc")).ReadAt(make([]byte, 1), 1)
			return err
		},
		"Writer":   func() error { _, err := Writer(ctx, &buf).Write([]byte("x")); return err },
		"WriterAt": func() error { _, err := WriterAt(ctx, f).WriteAt([]byte("x"), 10); return err },
		"WriteSeeker.Write": func() error {
			_, err := WriteSeeker(ctx, f).Write([]byte("x"))
			return err
		},
		"WriteSeeker.Seek": func() error {
			_, err := WriteSeeker(ctx, f).Seek(0, io.SeekStart)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); err != nil {
			t.Errorf("%s before cancel: %v", name, err)
		}
	}
	cancel()
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s after cancel: %v, want context.Canceled", name, err)
		}
	}
}
