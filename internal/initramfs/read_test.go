package initramfs_test

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/imageread/imagetest"
	"github.com/keelos/keel/internal/initramfs"
)

// readFiles reads the regular files of a newc archive by clean name; a
// hard link takes its data from the member of its set that carries it.
func readFiles(r io.Reader) (map[string][]byte, error) {
	cr := initramfs.NewReader(r)
	files := map[string][]byte{}
	links := map[uint32][]string{}
	data := map[uint32][]byte{}
	for {
		h, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if !h.Mode.IsRegular() {
			continue
		}
		b, err := io.ReadAll(cr)
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		files[name] = b
		if h.Nlink > 1 {
			links[h.Ino] = append(links[h.Ino], name)
			if len(b) > 0 {
				data[h.Ino] = b
			}
		}
	}
	for ino, names := range links {
		for _, n := range names {
			files[n] = data[ino]
		}
	}
	return files, nil
}

// TestReadBack reads every header field and file Write stored, through
// each codec.
func TestReadBack(t *testing.T) {
	files := map[string]string{"init": "#!init\n", "etc/keel/build.toml": "x", "usr/bin/same": "x", "etc/empty": ""}
	root, err := imagetest.Tree(filepath.Join(t.TempDir(), "store"), files)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []initramfs.Compression{initramfs.None, initramfs.Gzip, initramfs.Zstd} {
		var b bytes.Buffer
		if err := initramfs.WriteEpoch(&b, root, c, 1234); err != nil {
			t.Fatal(err)
		}
		if got, ok := initramfs.Detect(b.Bytes()); !ok || got != c {
			t.Errorf("%v detected as %v, %v", c, got, ok)
		}
		rc, err := initramfs.Decompress(&b)
		if err != nil {
			t.Fatal(err)
		}
		cr := initramfs.NewReader(rc)
		var dirs []string
		got := map[string]string{}
		for {
			h, err := cr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			if h.Mtime != 1234 || h.UID != 0 {
				t.Errorf("%v: %s: %+v", c, h.Name, h)
			}
			switch {
			case h.Mode.IsDir():
				if h.Mode != fs.ModeDir|0o755 {
					t.Errorf("%s: mode %v", h.Name, h.Mode)
				}
				dirs = append(dirs, h.Name)
			case h.Mode == 0o644:
				data, _ := io.ReadAll(cr)
				got[h.Name] = string(data)
			default:
				t.Errorf("%s: mode %v", h.Name, h.Mode)
			}
		}
		rc.Close()
		if strings.Join(dirs, " ") != "etc etc/keel usr usr/bin" {
			t.Errorf("%v: directories %q", c, dirs)
		}
		// The hard link set of "x" carries its data with the last name.
		if got["etc/keel/build.toml"] != "" || got["usr/bin/same"] != "x" || got["init"] != "#!init\n" || len(got) != 4 {
			t.Errorf("%v: files %q", c, got)
		}
	}
}

// FuzzReader checks the newc reader: no input makes it panic, and what
// it allocates is bounded by the input, not by the sizes its headers
// claim.
func FuzzReader(f *testing.F) {
	seed, err := imagetest.CPIO(f.TempDir(), map[string]string{"init": "#!init\n", "etc/keel/build.toml": "x", "usr/bin/same": "x", "etc/empty": ""})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("070701"))
	// A file whose header claims 256 MiB that the archive lacks.
	f.Add([]byte("070701" + "00000001" + "000081A4" + "00000000" + "00000000" + "00000001" + "00000000" +
		"0FFFFFFF" + strings.Repeat("00000000", 4) + "00000005" + "00000000" + "init\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := imagetest.Allocated(func() { readFiles(bytes.NewReader(data)) })
		if limit := uint64(16*len(data) + 1<<20); n > limit {
			t.Fatalf("%d bytes of input: %d bytes allocated, more than %d", len(data), n, limit)
		}
	})
}

// FuzzCPIORoundTrip checks that a file archived by WriteCPIO is read
// back unchanged, hard-linked or not.
func FuzzCPIORoundTrip(f *testing.F) {
	f.Add("etc/keel/build.toml", []byte("name = \"host\"\n"))
	f.Add("bin/sh", []byte{})
	f.Add("init", []byte("#!init\n"))
	f.Fuzz(func(t *testing.T, name string, content []byte) {
		files := map[string]string{"etc/keel/build.toml": "x", "init": "#!init\n", name: string(content)}
		root, err := imagetest.Tree(filepath.Join(t.TempDir(), "store"), files)
		if err != nil {
			return // not a name a tree can hold
		}
		var b bytes.Buffer
		if err := initramfs.WriteCPIO(&b, root, 0); err != nil {
			return
		}
		got, err := readFiles(&b)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		clean := strings.TrimPrefix(path.Clean("/"+name), "/")
		if data, ok := got[clean]; !ok || !bytes.Equal(data, content) {
			t.Fatalf("%q: read back %q (found %v), want %q", name, data, ok, content)
		}
	})
}
