// Package buildkittest starts a real buildkitd for keel's tests: rootful,
// with Debian's runc and the overlayfs snapshotter, state in a temporary
// directory, listening on a unix socket and, when asked, on a loopback TCP
// port with mutual TLS (certificates made by Certs).
//
// The daemon binary comes from hack/install-buildkitd.sh (run by `make
// deps`, so by `make test`); a test that needs it and cannot find it
// fails, saying how to install it.
package buildkittest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keelos/keel/internal/buildkit"
)

// Version is the buildkitd version hack/install-buildkitd.sh builds.
const Version = "v0.33.1"

// Binary returns the path of buildkitd: $KEEL_BUILDKITD, else where
// hack/install-buildkitd.sh puts it.
func Binary() (string, error) {
	if p := os.Getenv("KEEL_BUILDKITD"); p != "" {
		return p, nil
	}
	tools := os.Getenv("KEEL_TOOLS_DIR")
	if tools == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		tools = filepath.Join(c, "keel", "tools")
	}
	p := filepath.Join(tools, "buildkitd-"+Version, "buildkitd")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("buildkitd %s not found at %s: run hack/install-buildkitd.sh (make deps runs it)", Version, p)
	}
	return p, nil
}

// Runc returns the path of runc, which buildkitd's OCI worker runs.
func Runc() (string, error) {
	if p, err := exec.LookPath("runc"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/runc"); err == nil {
		return "/usr/sbin/runc", nil
	}
	return "", errors.New("runc not found: install Debian's runc (hack/install-deps.sh does)")
}

// Daemon is a running buildkitd.
type Daemon struct {
	Unix string // unix://… address
	TCP  string // tcp://127.0.0.1:PORT address, when started with TLS
	TLS  *TLSFiles
	dir  string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

// TLSFiles are PEM files: a CA, the server's certificate and key (for
// 127.0.0.1 and localhost), and a client certificate and key.
type TLSFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// Options tune Start.
type Options struct {
	TLS bool // also listen on a loopback TCP port with mutual TLS
}

// Start starts buildkitd and waits until it answers.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("buildkitd runs rootful in keel's tests: run them as root")
	}
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	runc, err := Runc()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keel-buildkitd-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{dir: dir, Unix: "unix://" + filepath.Join(dir, "buildkitd.sock"), log: &lockedBuffer{}, done: make(chan struct{})}
	cfg := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		return nil, err
	}
	args := []string{"--config", cfg, "--root", filepath.Join(dir, "root"), "--addr", d.Unix,
		"--oci-worker=true", "--containerd-worker=false",
		"--oci-worker-snapshotter=overlayfs", "--oci-worker-binary=" + runc}
	if opts.TLS {
		if d.TLS, err = Certs(filepath.Join(dir, "tls")); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		d.TCP = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		args = append(args, "--addr", d.TCP, "--tlscacert", d.TLS.CA, "--tlscert", d.TLS.ServerCert, "--tlskey", d.TLS.ServerKey)
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := buildkit.Config{Addr: d.Unix, ConnectTimeout: 2 * time.Second}.Ping(pctx)
		cancel()
		if err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("buildkitd exited: %s", d.Log())
		default:
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("buildkitd did not answer in 60s: %v\n%s", err, d.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Log is what buildkitd printed.
func (d *Daemon) Log() string { return d.log.String() }

// Stop stops buildkitd (TERM, then KILL after 20s) and removes its state.
func (d *Daemon) Stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	// A killed daemon can leave overlay mounts behind: unmount what is
	// under its root before removing it.
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		lines := strings.Split(string(data), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			f := strings.Fields(lines[i])
			if len(f) > 4 && strings.HasPrefix(f[4], d.dir+"/") {
				syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
	os.RemoveAll(d.dir)
}

// Config is a client configuration for the daemon's unix socket.
func (d *Daemon) Config() buildkit.Config { return buildkit.Config{Addr: d.Unix} }

// TLSConfig is a client configuration for the daemon's TLS port.
func (d *Daemon) TLSConfig() buildkit.Config {
	return buildkit.Config{Addr: d.TCP, CACert: d.TLS.CA, Cert: d.TLS.ClientCert, Key: d.TLS.ClientKey}
}

// Shared starts one daemon (with TLS) the first time it is called and
// returns it every time after; StopShared stops it (from TestMain).
func Shared(ctx context.Context) (*Daemon, error) {
	shared.once.Do(func() { shared.d, shared.err = Start(ctx, Options{TLS: true}) })
	return shared.d, shared.err
}

// StopShared stops the daemon Shared started, if any.
func StopShared() {
	if shared.d != nil {
		shared.d.Stop()
	}
}

var shared struct {
	once sync.Once
	d    *Daemon
	err  error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Certs writes a new CA, a server certificate for 127.0.0.1 and
// localhost, and a client certificate, all signed by the CA, into dir.
func Certs(dir string) (*TLSFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keel test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	f := &TLSFiles{CA: filepath.Join(dir, "ca.pem")}
	if err := writePEM(f.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyPath, "PRIVATE KEY", keyDER)
	}
	f.ServerCert, f.ServerKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	f.ClientCert, f.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := leaf(2, "buildkitd", x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey); err != nil {
		return nil, err
	}
	if err := leaf(3, "keel", x509.ExtKeyUsageClientAuth, f.ClientCert, f.ClientKey); err != nil {
		return nil, err
	}
	return f, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
