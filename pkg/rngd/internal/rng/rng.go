// Package rng credits the kernel's entropy pool with bytes from a
// hardware random number generator (virtio-rng, a TPM, a SoC's RNG).
package rng

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoSource is returned (wrapped) when the hardware source is absent.
var ErrNoSource = errors.New("no hardware random number generator")

// PoolInfo encodes struct rand_pool_info for RNDADDENTROPY: entropy bits
// credited, buffer size, then the bytes, in native byte order.
func PoolInfo(data []byte, bits int) []byte {
	b := make([]byte, 8+len(data))
	binary.NativeEndian.PutUint32(b[0:], uint32(bits))
	binary.NativeEndian.PutUint32(b[4:], uint32(len(data)))
	copy(b[8:], data)
	return b
}

// Read reads n bytes from the source at path.
func Read(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoSource)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		// /dev/hwrng with no current driver reads ENODEV: absent too.
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoSource)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// Add mixes data into the pool of the random device at randomPath
// (/dev/random) and credits it with 8 bits per byte: the source is
// hardware, which is what crediting is for.
func Add(randomPath string, data []byte) error {
	f, err := os.OpenFile(randomPath, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("add entropy: %w", err)
	}
	defer f.Close()
	info := PoolInfo(data, 8*len(data))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])))
	if errno != 0 {
		return fmt.Errorf("add entropy: RNDADDENTROPY: %w", errno)
	}
	return nil
}
