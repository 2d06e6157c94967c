package cache

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// tarOf archives entries (name, type, content or link target) with
// archive/tar.
func tarOf(t testing.TB, entries ...[3]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Typeflag: e[1][0], Mode: 0o644}
		switch h.Typeflag {
		case tar.TypeReg:
			h.Size = int64(len(e[2]))
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e[2]
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e[2]))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sparseTar is a tar of one PAX sparse file of realSize bytes whose only
// data is one byte: archive/tar expands such an entry to its full size.
func sparseTar(realSize int64) []byte {
	rec := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		n := len(s)
		for n != len(strconv.Itoa(n))+len(s) {
			n = len(strconv.Itoa(n)) + len(s)
		}
		return strconv.Itoa(n) + s
	}
	header := func(name string, typ byte, size int) []byte {
		b := make([]byte, 512)
		copy(b, name)
		copy(b[100:], "0000644\x00")
		copy(b[108:], "0000000\x00")
		copy(b[116:], "0000000\x00")
		copy(b[124:], fmt.Sprintf("%011o\x00", size))
		copy(b[136:], "00000000000\x00")
		b[156] = typ
		copy(b[257:], "ustar\x0000")
		copy(b[148:], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	pax := rec("GNU.sparse.major", "1") + rec("GNU.sparse.minor", "0") +
		rec("GNU.sparse.name", "blobs/sha256/big") + rec("GNU.sparse.realsize", strconv.FormatInt(realSize, 10))
	data := append(pad([]byte("1\n0\n1\n")), 'x')
	var out []byte
	out = append(out, header("PaxHeaders/big", tar.TypeXHeader, len(pax))...)
	out = append(out, pad([]byte(pax))...)
	out = append(out, header("big", tar.TypeReg, len(data))...)
	out = append(out, pad(data)...)
	return append(out, make([]byte, 1024)...)
}

// FuzzUntarLayout checks that whatever archive it is given, UntarLayout
// writes only regular files and directories, only inside its directory,
// no more bytes than the archive holds, and each file as archived.
func FuzzUntarLayout(f *testing.F) {
	reg, dir, sym := string(tar.TypeReg), string(tar.TypeDir), string(tar.TypeSymlink)
	f.Add(tarOf(f, [3]string{"oci-layout", reg, `{"imageLayoutVersion":"1.0.0"}`}, [3]string{"blobs/", dir, ""},
		[3]string{"./blobs/sha256/aa", reg, "blob"}, [3]string{"index.json", reg, "{}"}))
	f.Add(tarOf(f, [3]string{"../escape", reg, "x"}))
	f.Add(tarOf(f, [3]string{"blobs", sym, "/etc"}, [3]string{"blobs/x", reg, "x"}))
	f.Add(tarOf(f, [3]string{"a", reg, "1"}, [3]string{"a/b", reg, "2"}))
	f.Add(sparseTar(64 << 20))
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		archive, out := filepath.Join(base, "layout.tar"), filepath.Join(base, "out")
		if err := os.RemoveAll(out); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(archive, data, 0o644); err != nil {
			t.Fatal(err)
		}
		err := UntarLayout(archive, out)
		if entries, _ := os.ReadDir(base); len(entries) > 2 {
			t.Fatalf("written next to the layout directory: %v", entries)
		}
		var written int64
		files := map[string][]byte{}
		filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, _ := d.Info()
			if !d.IsDir() && !d.Type().IsRegular() {
				t.Fatalf("%s: %v, not a file or directory", p, d.Type())
			}
			if d.Type().IsRegular() {
				written += info.Size()
				rel, _ := filepath.Rel(out, p)
				files[filepath.ToSlash(rel)], _ = os.ReadFile(p)
			}
			return nil
		})
		if written > int64(len(data)) {
			t.Fatalf("%d bytes written from an archive of %d", written, len(data))
		}
		if err != nil {
			return
		}
		tr := tar.NewReader(bytes.NewReader(data))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			want, _ := io.ReadAll(tr)
			name := filepath.ToSlash(filepath.Clean(h.Name))
			if got, ok := files[name]; !ok || !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes extracted (found %v), want %d", name, len(got), ok, len(want))
			}
		}
	})
}
