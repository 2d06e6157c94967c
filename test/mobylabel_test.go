package test

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
)

// probeProgram reports, from inside its container, what the test checks
// the LinuxKit label set: its effective capabilities, the bind, and
// whether its root file system takes a write.
const probeProgram = `package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		panic(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "CapEff:") {
			fmt.Println("probe", strings.Join(strings.Fields(l), " "))
		}
	}
	if fi, err := os.Stat("/host-keel"); err != nil {
		fmt.Println("probe host-keel:", err)
	} else {
		fmt.Println("probe host-keel is a directory:", fi.IsDir())
	}
	fmt.Println("probe write /:", os.WriteFile("/probe-write", nil, 0o644))
	for {
		time.Sleep(time.Hour)
	}
}
`

// mobyConfig is the label LinuxKit's package builder would write for a
// build.yml config of these three keys.
const mobyConfig = `{"capabilities":["CAP_NET_ADMIN"],"binds":["/etc/keel:/host-keel:ro"],"readonly":true}`

// TestBootLinuxKitLabelSlow pushes an image carrying LinuxKit's
// org.mobyproject.config label to a loopback registry, boots
// examples/minimal.toml with it as a service whose entry sets none of
// the label's keys (it only allows the two that widen privilege), and
// checks on the console that the container runs with the label's
// capabilities, bind and read-only root.
func TestBootLinuxKitLabelSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := t.TempDir()
	img, err := tarball.ImageFromPath(writeProgramImage(t, dir, "probe", probeProgram, "keel.test/probe:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{imagelabel.MobyConfig: mobyConfig}
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(ln)
	defer srv.Close()
	ref := ln.Addr().String() + "/linuxkit/probe:1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}

	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(repo, "examples", "minimal.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(example), `"../`, `"`+repo+`/`)
	s += "\n[[service]]\nname = \"probe\"\nimage = \"" + ref + "\"\nallow-image-privileges = [\"capabilities\", \"binds\"]\n"
	specFile := filepath.Join(dir, "minimal.toml")
	if err := os.WriteFile(specFile, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{specFile}, Dir: out, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
	}); err != nil {
		t.Fatal(err)
	}
	srv.Close() // the image is in the output: the boot needs no registry

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	m, err := qemu.Start(ctx, qemu.Options{Image: filepath.Join(out, "minimal-amd64-kernel"), Mem: 1024,
		Cmdline: "keel.console_log=1", Timeout: 14 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("console:\n%s", tail(m.Console(), 6000))
		}
	}()
	// The probe's lines, in the order it prints them, whenever they
	// reach the console relative to init's milestones.
	for _, re := range []string{
		// CAP_NET_ADMIN (12) alone.
		`\[probe\] probe CapEff: 0000000000001000`,
		`\[probe\] probe host-keel is a directory: true`,
		`\[probe\] probe write /: open /probe-write: read-only file system`,
	} {
		if _, err := m.Expect(regexp.MustCompile(re), 6*time.Minute); err != nil {
			t.Fatalf("waiting for %q: %v", re, err)
		}
	}
	if !strings.Contains(m.Console(), "keel: milestone services-running") {
		if _, err := m.Expect(regexp.MustCompile(`keel: milestone services-running`), 6*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Powerdown(); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(); err != nil {
		t.Fatal(err)
	}
}
