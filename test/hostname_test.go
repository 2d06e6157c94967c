package test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// hostnameSpec is a machine with a host name of its own (/etc/hostname),
// the metadata onboot package and a root shell on the console.
const hostnameSpec = `name = "named"
init = ["REPO/init"]

[kernel]
image = "REPO/kernel/debian-cloud"
cmdline = "console=ttyS0 panic=-1"
modules = ["virtio_blk", "vfat", "nls_cp437", "nls_ascii"]

[[onboot]]
name = "metadata"
image = "REPO/pkg/metadata"
command = ["/usr/bin/keel-metadata", "--no-cloud"]

[[service]]
name = "getty"
image = "REPO/pkg/getty"
env = ["INSECURE=true"]

[[file]]
path = "/etc/hostname"
contents = "keel-spec-host\n"
`

// TestBootMetadataHostnameSlow boots one image with two config drives
// made by keel run qemu --metadata: user-data without a host name keeps
// the spec's, and a seed directory whose meta-data names one sets it.
func TestBootMetadataHostnameSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	specPath := filepath.Join(dir, "named.toml")
	if err := os.WriteFile(specPath, []byte(regexp.MustCompile(`REPO`).ReplaceAllLiteralString(hostnameSpec, repo)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{specPath}, Dir: dir, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
	}); err != nil {
		t.Fatalf("building the spec: %v", err)
	}
	authorized, _ := newSSHKey(t, "keel-test")
	userData := filepath.Join(dir, "user-data")
	if err := os.WriteFile(userData, []byte("#cloud-config\nssh_authorized_keys:\n  - "+authorized+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seed, "meta-data"), []byte("instance-id: i-1\nlocal-hostname: from-meta-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ name, metadata, read, want string }{
		{"user-data without a host name", userData, `hostname "", \d+ bytes of user data, 1 ssh keys`, "keel-spec-host"},
		{"meta-data with a host name", seed, `hostname "from-meta-data", 0 bytes of user data, 0 ssh keys`, "from-meta-data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := qemu.Start(context.Background(), qemu.Options{
				Image: filepath.Join(dir, "named-amd64-kernel"), Mem: 1024, Metadata: c.metadata, Timeout: 14 * time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Kill()
			defer func() {
				if t.Failed() {
					t.Logf("console:\n%s", tail(m.Console(), 6000))
				}
			}()
			expect := func(re *regexp.Regexp) {
				t.Helper()
				if _, err := m.Expect(re, 6*time.Minute); err != nil {
					t.Fatalf("waiting for %q: %v", re, err)
				}
			}
			expect(regexp.MustCompile(`keel: onboot metadata: exited 0`))
			expect(milestone("services-running"))
			// The drive was found and read as it holds: its log says what
			// it took from where.
			if err := m.Send("\nkeel-ctl logs metadata\n"); err != nil {
				t.Fatal(err)
			}
			expect(regexp.MustCompile(`keel-metadata: from config drive \S+: ` + c.read))
			if err := m.Send("\necho host=$(hostname)\n"); err != nil {
				t.Fatal(err)
			}
			expect(regexp.MustCompile(`(?m)^host=` + regexp.QuoteMeta(c.want) + `\r?$`))
		})
	}
}
