package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/spec"
	"github.com/keelos/keel/internal/testenv"
)

// TestBootNginxSlow builds examples/nginx.toml, whose nginx is Debian's
// nginx-light with its www-data account declared in [accounts] (no
// /etc/passwd written by hand), boots it, and fetches the page nginx
// serves through --publish, from the host.
func TestBootNginxSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	pkg, err := spec.LoadPackage("../examples/pkg/nginx")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range pkg.Files {
		if f.Path == "/etc/passwd" || f.Path == "/etc/group" {
			t.Fatalf("examples/pkg/nginx writes %s by hand", f.Path)
		}
	}
	if pkg.Accounts == nil || len(pkg.Accounts.Users) == 0 {
		t.Fatal("examples/pkg/nginx declares no [accounts]")
	}

	dir := t.TempDir()
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{exampleSpec(t, dir, "nginx")}, Dir: dir, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
	}); err != nil {
		t.Fatalf("building examples/nginx.toml: %v", err)
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	port := freePort(t)
	m, err := qemu.Start(context.Background(), qemu.Options{
		Image: filepath.Join(dir, "nginx-amd64-kernel"), Mem: 1024, Console: console, Timeout: 14 * time.Minute,
		Publish: []string{fmt.Sprintf("%d:80", port)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("console:\n%s", tail(m.Console(), 8000))
		}
	}()
	if _, err := m.Expect(milestone("services-running"), 6*time.Minute); err != nil {
		t.Fatalf("waiting for the services: %v", err)
	}

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Timeout: 10 * time.Second}
	var body string
	var resp *http.Response
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		if resp, err = client.Get(url); err != nil {
			continue
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil && resp.StatusCode == http.StatusOK {
			body = string(b)
			break
		}
		err = fmt.Errorf("%s: %s", resp.Status, b)
	}
	if body == "" {
		t.Fatalf("GET %s: %v", url, err)
	}
	if !strings.Contains(body, "Hello from nginx in a keel container.") {
		t.Errorf("GET %s: %q", url, body)
	}
	if s := resp.Header.Get("Server"); !strings.HasPrefix(s, "nginx") {
		t.Errorf("Server header %q", s)
	}
	// nginx ran its workers as www-data and was never restarted: the
	// getpwnam failure the issue saw made it crash-loop.
	if regexp.MustCompile(`getpwnam|nginx: .*; restarting in`).MatchString(m.Console()) {
		t.Errorf("nginx failed at least once")
	}
}
