package container

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/layout"
)

// maxSeccompProgram is the largest program the kernel takes: 4096
// instructions (BPF_MAXINSNS) of 8 bytes.
const maxSeccompProgram = 4096 * 8

// seccompProgram reads the bundle's compiled seccomp program and checks it
// against the digest in its document. It returns nil for an unconfined
// container; a bundle naming a profile without a program, or with a
// program that does not match, does not start.
func (b *Bundle) seccompProgram() ([]byte, error) {
	a := b.Spec.Annotations
	want := a[layout.AnnotationSeccompSHA256]
	if want == "" {
		if name := a[layout.AnnotationSeccomp]; name != "" && name != layout.SeccompUnconfined {
			return nil, fmt.Errorf("seccomp profile %s: %s has no %s", name, layout.BundleConfig, layout.AnnotationSeccompSHA256)
		}
		return nil, nil
	}
	f, err := os.Open(filepath.Join(b.Dir, layout.BundleSeccomp))
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	defer f.Close()
	prog, err := io.ReadAll(io.LimitReader(f, maxSeccompProgram+1))
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if len(prog) == 0 || len(prog)%8 != 0 || len(prog) > maxSeccompProgram {
		return nil, fmt.Errorf("seccomp: %s: %d bytes is not a program of 1 to 4096 instructions", layout.BundleSeccomp, len(prog))
	}
	sum := sha256.Sum256(prog)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("seccomp: %s has sha256 %s, %s wants %s", layout.BundleSeccomp, got, layout.BundleConfig, want)
	}
	return prog, nil
}

// installSeccomp makes prog (little-endian struct sock_filter, as keel's
// targets are) the calling thread's seccomp filter; the thread keeps it
// through exec. Without no_new_privs this needs CAP_SYS_ADMIN.
func installSeccomp(prog []byte) error {
	filter := make([]unix.SockFilter, len(prog)/8)
	r := bytes.NewReader(prog)
	if err := binary.Read(r, binary.LittleEndian, filter); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	if e != 0 {
		return fmt.Errorf("installing the seccomp filter: %w", e)
	}
	return nil
}
