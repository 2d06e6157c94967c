package initramfs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keelos/keel/internal/fstree"
)

// memTree is a real in-memory Source: entries in order, contents by digest.
type memTree struct {
	entries []*fstree.Entry
	blobs   map[string][]byte
}

func (m *memTree) Entries() []*fstree.Entry { return m.entries }

func (m *memTree) Open(e *fstree.Entry) (io.ReadCloser, error) {
	b, ok := m.blobs[e.Digest]
	if !ok {
		return nil, fmt.Errorf("no blob %s", e.Digest)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memTree) dir(p string, mode fs.FileMode) {
	m.entries = append(m.entries, &fstree.Entry{Path: p, Mode: fs.ModeDir | mode})
}

func (m *memTree) file(p string, mode fs.FileMode, content string) {
	d := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(content)))
	m.blobs[d] = []byte(content)
	m.entries = append(m.entries, &fstree.Entry{Path: p, Mode: mode, Size: int64(len(content)), Digest: d,
		Xattrs: map[string]string{"user.dropped": "x"}})
}

func sampleTree() *memTree {
	m := &memTree{blobs: map[string][]byte{}}
	m.dir("bin", 0o755)
	m.file("bin/a", 0o755, "same content\n")
	m.file("bin/b", 0o755, "same content\n")
	m.file("bin/c", 0o755, "same content\n")
	m.file("bin/other-mode", 0o644, "same content\n") // same digest, other mode: not a link
	m.file("bin/suid", 0o755|fs.ModeSetuid, "x")
	m.file("empty", 0o600, "")
	m.entries = append(m.entries,
		&fstree.Entry{Path: "sh", Mode: fs.ModeSymlink | 0o777, Linkname: "bin/a"},
		&fstree.Entry{Path: "dev", Mode: fs.ModeDir | 0o755},
		&fstree.Entry{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1},
		&fstree.Entry{Path: "dev/fifo", Mode: fs.ModeNamedPipe | 0o644},
		&fstree.Entry{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	)
	m.file("tmp/big", 0o644, strings.Repeat("0123456789abcdef", 70000)+"tail")
	return m
}

func write(t *testing.T, src fstree.Source, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, src, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGNUCpioListsArchive(t *testing.T) {
	raw := write(t, sampleTree(), None)
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	listing := string(out)
	for _, want := range []string{
		"-rwxr-xr-x   3 root     root           13 Jan  1  1970 bin/c",
		"-rw-r--r--   1 root     root           13 Jan  1  1970 bin/other-mode",
		"-rwsr-xr-x   1 root     root            1 Jan  1  1970 bin/suid",
		"lrwxrwxrwx   1 root     root            5 Jan  1  1970 sh -> bin/a",
		"crw-------   1 root     root       5,   1 Jan  1  1970 dev/console",
		"prw-r--r--   1 root     root            0 Jan  1  1970 dev/fifo",
		"drwxrwxrwt   2 root     root            0 Jan  1  1970 tmp",
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
}

func TestWriteIsReproducible(t *testing.T) {
	for _, c := range []Compression{None, Gzip, Zstd} {
		a, b := write(t, sampleTree(), c), write(t, sampleTree(), c)
		if !bytes.Equal(a, b) {
			t.Errorf("%v: two writes differ", c)
		}
	}
}

// TestExtractAsRoot unpacks the zstd archive with zstd -d | cpio -id and
// compares it with the tree; mknod needs root.
func TestExtractAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test extracts device nodes and must run as root")
	}
	for _, c := range []Compression{Zstd, Gzip} {
		t.Run(c.String(), func(t *testing.T) {
			m := sampleTree()
			arc := filepath.Join(t.TempDir(), "initrd")
			if err := os.WriteFile(arc, write(t, m, c), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			decomp := "zstd -dc"
			if c == Gzip {
				decomp = "gzip -dc"
			}
			cmd := exec.Command("sh", "-c", decomp+" "+arc+" | cpio -id --quiet")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, e := range m.entries {
				p := filepath.Join(dir, e.Path)
				st, err := os.Lstat(p)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode() != e.Mode {
					t.Errorf("%s: mode %v, want %v", e.Path, st.Mode(), e.Mode)
				}
				if e.Mode.IsRegular() {
					got, _ := os.ReadFile(p)
					if !bytes.Equal(got, m.blobs[e.Digest]) {
						t.Errorf("%s: content differs", e.Path)
					}
				}
			}
			a, _ := os.Stat(filepath.Join(dir, "bin/a"))
			c3, _ := os.Stat(filepath.Join(dir, "bin/c"))
			if !os.SameFile(a, c3) || a.Sys().(*syscall.Stat_t).Nlink != 3 {
				t.Errorf("bin/a and bin/c are not one inode with 3 links")
			}
			if rdev := a.Sys().(*syscall.Stat_t).Rdev; rdev != 0 {
				t.Errorf("regular file has rdev %d", rdev)
			}
			if l, _ := os.Readlink(filepath.Join(dir, "sh")); l != "bin/a" {
				t.Errorf("symlink target %q", l)
			}
		})
	}
}

func TestSizeMismatchFails(t *testing.T) {
	m := sampleTree()
	m.entries[1].Size = 100 // bin/a claims more than its blob holds
	m.entries[1].Digest = "sha256:other"
	m.blobs["sha256:other"] = []byte("short")
	if err := Write(io.Discard, m, None); err == nil || !strings.Contains(err.Error(), "bin/a") {
		t.Fatalf("err = %v", err)
	}
}
