package sshkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestHostKeyGeneratedOnceAndParses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	p, err := HostKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(p)
	signer, err := ssh.ParsePrivateKey(first)
	if err != nil {
		t.Fatal(err)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("type %s", signer.PublicKey().Type())
	}
	pub, _ := os.ReadFile(p + ".pub")
	if string(pub) != string(ssh.MarshalAuthorizedKey(signer.PublicKey())) {
		t.Errorf(".pub does not match: %s", pub)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if _, err := HostKey(dir); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(p); string(again) != string(first) {
		t.Error("second call replaced the key")
	}
	// OpenSSH itself reads the key, when ssh-keygen is on the machine.
	if kg, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command(kg, "-y", "-f", p).Output()
		if err != nil || strings.TrimSpace(string(out)) != strings.TrimSpace(string(pub)) {
			t.Errorf("ssh-keygen -y: %v %s", err, out)
		}
	}
}

func authorizedLine(t *testing.T, comment string) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(pub)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " " + comment
}

func TestAuthorizedKeysGathersValidUniqueLines(t *testing.T) {
	dir := t.TempDir()
	a, b := authorizedLine(t, "a@x"), authorizedLine(t, "b@y")
	spec := filepath.Join(dir, "spec")
	meta := filepath.Join(dir, "meta")
	os.WriteFile(spec, []byte("# from the spec\n"+a+"\n\nnot a key\n"), 0o644)
	// The same key again with another comment counts once.
	os.WriteFile(meta, []byte(strings.Replace(a, "a@x", "other", 1)+"\n"+`no-pty `+b+"\n"), 0o644)
	keys, warnings, err := AuthorizedKeys(spec, filepath.Join(dir, "absent"), meta)
	if err != nil {
		t.Fatal(err)
	}
	if want := a + "\nno-pty " + b + "\n"; string(keys) != want {
		t.Errorf("got\n%s\nwant\n%s", keys, want)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], spec+":4:") {
		t.Errorf("warnings %q", warnings)
	}
	out := filepath.Join(dir, "authorized_keys")
	if err := WriteAuthorizedKeys(out, keys); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}
