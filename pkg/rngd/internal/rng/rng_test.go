package rng

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPoolInfoLayout(t *testing.T) {
	b := PoolInfo([]byte{1, 2, 3}, 24)
	if len(b) != 11 || binary.NativeEndian.Uint32(b) != 24 || binary.NativeEndian.Uint32(b[4:]) != 3 || !bytes.Equal(b[8:], []byte{1, 2, 3}) {
		t.Errorf("got %v", b)
	}
}

func TestReadMissingSource(t *testing.T) {
	if _, err := Read(filepath.Join(t.TempDir(), "hwrng"), 16); !errors.Is(err, ErrNoSource) {
		t.Errorf("got %v", err)
	}
	p := filepath.Join(t.TempDir(), "short")
	os.WriteFile(p, []byte("abc"), 0o644)
	if _, err := Read(p, 16); err == nil || errors.Is(err, ErrNoSource) {
		t.Errorf("short source: %v", err)
	}
}

// The test runs as root on the build machines; RNDADDENTROPY then reaches
// the host kernel for real, and crediting 64 bits of urandom is harmless.
func TestAddToKernelPoolAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if err := Add("/dev/random", make([]byte, 8)); err == nil {
			t.Fatal("RNDADDENTROPY succeeded without privilege")
		}
		return
	}
	b, err := Read("/dev/urandom", 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := Add("/dev/random", b); err != nil {
		t.Fatal(err)
	}
}
