package hostfile

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fixture is a directory holding a file, a subdirectory and, next to it,
// a secret that stands in for /etc/shadow.
func fixture(t *testing.T) (dir, secret string) {
	t.Helper()
	top := t.TempDir()
	secret = filepath.Join(top, "shadow")
	if err := os.WriteFile(secret, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(top, "spec")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "motd"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestOpenReadsFilesAndLinksInside(t *testing.T) {
	dir, _ := fixture(t)
	symlink(t, "sub/motd", filepath.Join(dir, "rel"))
	symlink(t, filepath.Join(dir, "sub", "motd"), filepath.Join(dir, "abs"))
	symlink(t, "sub", filepath.Join(dir, "subdir"))
	symlink(t, "../sub/motd", filepath.Join(dir, "sub", "up"))
	for _, name := range []string{"sub/motd", "rel", "abs", "subdir/motd", "sub/up", "subdir/up", "sub/../rel"} {
		data, err := ReadFile(context.Background(), dir, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(data) != "hello\n" {
			t.Errorf("%s: read %q", name, data)
		}
	}
}

func TestOpenRefusesWhatIsNotARegularFileInside(t *testing.T) {
	dir, secret := fixture(t)
	symlink(t, secret, filepath.Join(dir, "shadow"))
	symlink(t, "../shadow", filepath.Join(dir, "relshadow"))
	symlink(t, filepath.Dir(secret), filepath.Join(dir, "parent"))
	symlink(t, ".", filepath.Join(dir, "self"))
	symlink(t, "/dev/zero", filepath.Join(dir, "zero"))
	symlink(t, "loop2", filepath.Join(dir, "loop1"))
	symlink(t, "loop1", filepath.Join(dir, "loop2"))
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The device /dev/zero is, made inside the directory (tests run as root).
	if err := unix.Mknod(filepath.Join(dir, "zerodev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxSize+1); err != nil { // sparse
		t.Fatal(err)
	}
	for name, why := range map[string]string{
		"shadow":       "leads out of " + dir + " through the symlink shadow -> " + secret,
		"relshadow":    "through the symlink relshadow -> ../shadow",
		"parent/motd":  "through the symlink parent -> " + filepath.Dir(secret),
		"self/../spec": "through the symlink self -> .",
		"zero":         "through the symlink zero -> /dev/zero",
		"fifo":         "is a FIFO",
		"zerodev":      "is a character device",
		"sock":         "is a socket",
		"sub":          "is a directory",
		"loop1":        "too many symlinks",
		"big":          "more than the 1073741824 (1 GiB)",
		"../shadow":    "is not a relative path inside",
		"/etc/shadow":  "is not a relative path inside",
	} {
		done := make(chan error, 1)
		go func() {
			f, err := Open(context.Background(), dir, name)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			var refused *RefusedError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), why) {
				t.Errorf("%s: got %v, want a refusal saying %q", name, err, why)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Open still blocked after 5s", name)
		}
	}
}

func TestOpenMissing(t *testing.T) {
	dir, _ := fixture(t)
	symlink(t, "nowhere", filepath.Join(dir, "dangling"))
	for _, name := range []string{"nothing", "dangling", "sub/nothing"} {
		if _, err := Open(context.Background(), dir, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: got %v, want fs.ErrNotExist", name, err)
		}
	}
}

func TestReadStopsWhenCancelled(t *testing.T) {
	dir, _ := fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Open(ctx, dir, "sub/motd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cancel()
	if _, err := io.ReadAll(f); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
	if _, err := Open(ctx, dir, "sub/motd"); !errors.Is(err, context.Canceled) {
		t.Fatalf("open after cancel: %v", err)
	}
}

func TestInside(t *testing.T) {
	dir, secret := fixture(t)
	symlink(t, secret, filepath.Join(dir, "shadow"))
	symlink(t, "sub", filepath.Join(dir, "subdir"))
	symlink(t, "sub/nothing", filepath.Join(dir, "dangling"))
	symlink(t, "../../x", filepath.Join(dir, "sub", "out"))
	for name, ok := range map[string]bool{
		"sub/motd": true, "subdir": true, "dangling": true,
		"shadow": false, "sub/out": false,
	} {
		err := Inside(dir, name)
		if (err == nil) != ok {
			t.Errorf("Inside(%s) = %v, want ok=%v", name, err, ok)
		}
	}
}
