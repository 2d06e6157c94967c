package grubpc

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestLoadOrderPutsDependenciesFirst(t *testing.T) {
	deps, err := parseModDeps([]byte("linux: relocator normal boot mmap\nrelocator: mmap\nmmap: boot\nboot:\nnormal: boot\nbiosdisk:\n"))
	if err != nil {
		t.Fatal(err)
	}
	order, err := loadOrder(deps, []string{"biosdisk", "linux"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "biosdisk boot mmap relocator normal linux"; strings.Join(order, " ") != want {
		t.Fatalf("order %v, want %s", order, want)
	}
	for i, m := range order {
		for _, d := range deps[m] {
			if slices.Index(order, d) > i {
				t.Errorf("%s comes before its dependency %s", m, d)
			}
		}
	}
}

func TestLoadOrderErrors(t *testing.T) {
	deps := map[string][]string{"a": {"b"}, "b": {"a"}, "c": {"missing"}}
	for _, c := range []struct{ module, want string }{
		{"a", "cycle"},
		{"c", "missing (needed by c) is not in moddep.lst"},
		{"nope", "module nope is not in moddep.lst"},
	} {
		if _, err := loadOrder(deps, []string{c.module}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.module, err, c.want)
		}
	}
}

// TestCompressIsRawLZMA checks, with xz, that the stream is what GRUB's
// decompressor reads: raw LZMA1 with lc=3, lp=0, pb=2.
func TestCompressIsRawLZMA(t *testing.T) {
	data := make([]byte, 300<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		if i%7 == 0 {
			data[i] = byte(r.IntN(256))
		} else {
			data[i] = byte(i / 1024)
		}
	}
	packed, err := compress(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(packed) >= len(data) {
		t.Fatalf("compressed %d bytes to %d", len(data), len(packed))
	}
	cmd := exec.Command("xz", "--decompress", "--format=raw", "--lzma1=lc=3,lp=0,pb=2,dict=64KiB", "--stdout")
	cmd.Stdin = bytes.NewReader(packed)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	// Without an end marker xz reports the stream as truncated after
	// writing all of it; what matters is the bytes.
	_ = cmd.Run()
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("xz unpacked %d bytes (want %d equal to the input): %s", out.Len(), len(data), stderr.String())
	}
}
