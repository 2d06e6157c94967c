package qemu

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/keelos/keel/internal/ovmfvars"
	"github.com/keelos/keel/internal/sbkeys"
)

// secureBootCode is the Secure Boot build of OVMF (Debian's ovmf): it
// needs SMM, and enforces Secure Boot once a PK is enrolled.
const secureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"

// SecureBoot is the key hierarchy enrolled in the firmware's variable
// store; the firmware then starts only images db's key signed.
type SecureBoot struct {
	PK, KEK, DB *x509.Certificate
}

// refused matches OVMF's boot manager refusing an image: Secure Boot's
// verdict on an unsigned, wrongly signed or changed one.
var refused = regexp.MustCompile(`failed to load Boot\w+[^\n]*Access Denied[^\n]*`)

// ErrRefused is returned when the firmware refused to start the image.
var ErrRefused = errors.New("the firmware refused to start the image (Access Denied): under Secure Boot, it is not signed by a key db trusts, or it changed after signing")

// enrolledVars writes the firmware's empty variable store with sb's keys
// enrolled and Secure Boot on, as dst.
func enrolledVars(template, dst string, sb *SecureBoot) error {
	tmpl, err := os.ReadFile(template)
	if err != nil {
		return fmt.Errorf("EFI variables (install ovmf): %w", err)
	}
	// Timestamped with the PK's NotBefore, as keel keys' .auth files are:
	// a later update from the guest must carry a later time.
	vars, err := ovmfvars.Write(tmpl, ovmfvars.SecureBoot(
		sbkeys.SignatureList(sb.PK), sbkeys.SignatureList(sb.KEK), sbkeys.SignatureList(sb.DB), sb.PK.NotBefore))
	if err != nil {
		return fmt.Errorf("enrolling Secure Boot keys: %w", err)
	}
	return os.WriteFile(dst, vars, 0o600)
}

// startTPM starts swtpm, a TPM 2.0 emulator, with its state and control
// socket in dir; QEMU connects to the socket.
func startTPM(dir string) (*exec.Cmd, string, error) {
	state := filepath.Join(dir, "tpm")
	if err := os.Mkdir(state, 0o700); err != nil {
		return nil, "", err
	}
	sock := filepath.Join(dir, "swtpm.sock")
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state, "--ctrl", "type=unixio,path="+sock)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("--tpm: starting swtpm (install swtpm): %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			return cmd, sock, nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, "", fmt.Errorf("--tpm: swtpm did not create its socket: %s", bytes.TrimSpace(log.Bytes()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
