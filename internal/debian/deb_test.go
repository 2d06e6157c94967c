package debian

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"./control", "./bin/hello"} {
		content, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, ext string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch ext {
	case "":
		return data
	case ".gz":
		w = gzip.NewWriter(&buf)
	case ".xz":
		w, err = xz.NewWriter(&buf)
	case ".zst":
		w, err = zstd.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeDeb writes an ar archive the way dpkg-deb lays out a .deb.
func writeDeb(t testing.TB, members [][2]string) string {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m[0], 0, 0, 0, "100644", len(m[1]))
		buf.WriteString(m[1])
		if len(m[1])%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	path := filepath.Join(t.TempDir(), "test.deb")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDataTarCompressions(t *testing.T) {
	control := tarOf(t, map[string]string{"./control": "Package: hello\nVersion: 1.0\nDescription: hi\n there\n"})
	// "_odd" has an odd size, so finding data.tar needs the 2-byte
	// member alignment right.
	data := tarOf(t, map[string]string{"./bin/hello": "#!/bin/sh\necho hello\n"})
	for _, ext := range []string{"", ".gz", ".xz", ".zst"} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			deb := writeDeb(t, [][2]string{
				{"debian-binary", "2.0\n"},
				{"control.tar" + ext, string(compress(t, ext, control))},
				{"_odd", "abc"},
				{"data.tar" + ext, string(compress(t, ext, data))},
			})
			ctl, err := Control(deb)
			if err != nil {
				t.Fatal(err)
			}
			if ctl["Package"] != "hello" || ctl["Description"] != "hi\n there" {
				t.Errorf("control = %q", ctl)
			}
			rc, err := DataTar(deb)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Error("data.tar differs")
			}
		})
	}
}

func TestDataTarRejects(t *testing.T) {
	notAr := filepath.Join(t.TempDir(), "x.deb")
	os.WriteFile(notAr, []byte("PK\x03\x04 not an ar archive"), 0o644)
	noData := writeDeb(t, [][2]string{{"debian-binary", "2.0\n"}})
	oddComp := writeDeb(t, [][2]string{{"data.tar.lz4", "xxx"}})
	for path, want := range map[string]string{notAr: "not a .deb", noData: "no data.tar", oddComp: "unsupported compression"} {
		_, err := DataTar(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", filepath.Base(filepath.Dir(path)), err, want)
		}
	}
}
