// Package sshkeys prepares what OpenSSH's sshd reads: host keys generated
// once, and one authorized_keys file gathered from several sources.
package sshkeys

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// HostKey returns the path of dir/ssh_host_ed25519_key, generating the key
// (and its .pub) when absent. A key already there is kept: on a volume it
// survives reboots, so clients keep trusting the host.
func HostKey(dir string) (string, error) {
	path := filepath.Join(dir, "ssh_host_ed25519_key")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("host key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("host key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return "", fmt.Errorf("host key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("host key: %w", err)
	}
	if err := writeFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return "", err
	}
	// The private key goes last: its presence is what marks the pair done.
	if err := writeFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// AuthorizedKeys reads authorized_keys files in order (missing ones are
// skipped) and returns their valid lines, each once. Invalid lines are
// reported in the returned warnings instead of failing: one bad key from
// metadata must not lock every key out.
func AuthorizedKeys(paths ...string) (keys []byte, warnings []string, err error) {
	seen := map[string]bool{}
	var out bytes.Buffer
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, warnings, fmt.Errorf("authorized keys: %w", err)
		}
		s := bufio.NewScanner(bytes.NewReader(b))
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; s.Scan(); n++ {
			line := strings.TrimSpace(s.Text())
			if line == "" || line[0] == '#' {
				continue
			}
			key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("%s:%d: %v", p, n, err))
				continue
			}
			id := string(key.Marshal())
			if seen[id] {
				continue
			}
			seen[id] = true
			out.WriteString(line + "\n")
		}
		if err := s.Err(); err != nil {
			return nil, warnings, fmt.Errorf("authorized keys: %s: %w", p, err)
		}
	}
	return out.Bytes(), warnings, nil
}

// WriteAuthorizedKeys writes keys to path with the 0600 mode sshd's
// StrictModes wants, replacing the file atomically.
func WriteAuthorizedKeys(path string, keys []byte) error {
	return writeFile(path, keys, 0o600)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
