package qemu

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/keelos/keel/internal/testenv"
)

// debianKernel downloads Debian's cloud kernel for arch with apt-get
// (needs the network) and returns the path of the vmlinuz in it.
func debianKernel(t *testing.T, arch string) string {
	t.Helper()
	dir := t.TempDir()
	meta := "linux-image-cloud-" + arch
	out, err := exec.Command("apt-cache", "depends", meta+":"+arch).CombinedOutput()
	if err != nil {
		t.Fatalf("apt-cache depends %s: %v\n%s", meta, err, out)
	}
	var pkg string
	for _, line := range strings.Split(string(out), "\n") {
		if dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(dep, "linux-image-") {
			pkg = strings.TrimSuffix(dep, ":"+arch)
		}
	}
	if pkg == "" {
		t.Fatalf("no kernel package among the dependencies of %s:\n%s", meta, out)
	}
	cmd := exec.Command("apt-get", "download", pkg+":"+arch)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %v", pkg, debs)
	}
	root := filepath.Join(dir, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		t.Fatalf("%s holds kernels %v", pkg, kernels)
	}
	return kernels[0]
}

// testInitramfs builds a gzipped newc initramfs holding testdata/testinit
// as /init, for arch.
func testInitramfs(t *testing.T, arch string) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/testinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test init: %v\n%s", err, out)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	records := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticFile("init", string(prog), 0o755),
	}
	cpio.MakeAllReproducible(records)
	if err := cpio.WriteRecords(w, records); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// kernelOutput lays out a kernel+initrd output as keel names it.
func kernelOutput(t *testing.T, arch string) string {
	t.Helper()
	var kernel string
	if arch == "amd64" {
		kernel = debianKernel(t, arch)
	} else {
		kernel = debianKernelByClient(t, arch)
	}
	dir := t.TempDir()
	prefix := filepath.Join(dir, "test-"+arch)
	if err := os.Rename(kernel, prefix+"-kernel"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+"-initrd.img", testInitramfs(t, arch), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+"-cmdline", []byte("quiet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return prefix + "-kernel"
}

func TestBootKernelInitrdRealKernelSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			kernel := kernelOutput(t, arch)
			ctx := context.Background()

			t.Run("echo and power off", func(t *testing.T) {
				start := time.Now()
				m, err := Start(ctx, Options{Image: kernel, Timeout: 90 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Kill()
				if _, err := m.Expect(regexp.MustCompile(`hello from init\n`), 60*time.Second); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: QEMU start to init: %s", arch, time.Since(start).Round(10*time.Millisecond))
				if err := m.Send("ping-42\n"); err != nil {
					t.Fatal(err)
				}
				got, err := m.Expect(regexp.MustCompile(`init got "(.*)\\n"`), 20*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if got[1] != "ping-42" {
					t.Errorf("init echoed %q, want ping-42", got[1])
				}
				if err := m.Wait(); err != nil {
					t.Errorf("Wait after power-off: %v", err)
				}
				t.Logf("%s: whole run: %s", arch, time.Since(start).Round(10*time.Millisecond))
			})

			t.Run("Run with typed input", func(t *testing.T) {
				dir := t.TempDir()
				in, typist := io.Pipe()
				console := &watcher{want: "hello from init", seen: make(chan struct{})}
				go func() {
					<-console.seen
					io.WriteString(typist, "typed\n")
				}()
				var cmdline []string
				err := Run(ctx, Options{
					Image:       kernel,
					Mem:         256,
					CPUs:        2,
					Disks:       []Disk{{Path: filepath.Join(dir, "data.qcow2"), Size: 1 << 30}},
					Publish:     []string{freePort(t) + ":22"},
					Console:     console,
					ConsoleFile: filepath.Join(dir, "console.log"),
					Stdin:       in,
					Timeout:     90 * time.Second,
					Verbose:     func(c []string) { cmdline = c },
				})
				if err != nil {
					t.Fatal(err)
				}
				logged, err := os.ReadFile(filepath.Join(dir, "console.log"))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(logged), `init got "typed\n"`) || strings.Contains(string(logged), "\r") {
					t.Errorf("console file lacks the echo or keeps \\r:\n%s", logged)
				}
				if !strings.Contains(console.String(), `init got "typed\n"`) {
					t.Errorf("console writer lacks the echo:\n%s", console.String())
				}
				if line := strings.Join(cmdline, " "); !strings.Contains(line, "-smp 2") || !strings.Contains(line, "data.qcow2") {
					t.Errorf("Verbose got %q", line)
				}
			})

			t.Run("kernel as EFI application from the ESP", func(t *testing.T) {
				// Debian's kernels are EFI executables: started from the
				// virtual ESP, they prove the UKI path up to the firmware
				// handing over (with no command line the kernel then stays
				// silent).
				efi := filepath.Join(t.TempDir(), "t-"+arch+".efi")
				if err := copyFile(kernel, efi); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				m, err := Start(ctx, Options{Image: efi, Timeout: 90 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Kill()
				if _, err := m.Expect(regexp.MustCompile(`BdsDxe: starting Boot[0-9A-F]+ "UEFI Misc Device`), 60*time.Second); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: firmware started the EFI application after %s", arch, time.Since(start).Round(10*time.Millisecond))
			})

			t.Run("init exits", func(t *testing.T) {
				m, err := Start(ctx, Options{Image: kernel, Cmdline: "keeltest=exit", Timeout: 90 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Kill()
				err = m.Wait()
				if err == nil || !strings.Contains(err.Error(), "Attempted to kill init") {
					t.Fatalf("Wait after init exited = %v, want an error naming the panic", err)
				}
				if !strings.Contains(m.Console(), "hello from init") {
					t.Errorf("console lacks the init greeting:\n%s", m.Console())
				}
			})
		})
	}
}

// watcher keeps what is written to it and closes seen once want shows up.
type watcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.seen != nil && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
