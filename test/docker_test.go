package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/testenv"
)

const webImage = "keel.test/web:1"

// webProgram is the workload that `docker run -p` publishes; given a
// URL, it prints what a GET of it answers instead, from inside its
// container.
const webProgram = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		resp, err := http.Get(os.Args[1])
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, io.LimitReader(resp.Body, 1<<20))
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello over http from a docker container")
	})
	if err := http.ListenAndServe(":80", nil); err != nil {
		panic(err)
	}
}
`

// TestBootDockerHostSlow boots the docker-host example twice on one data
// disk. On the first boot, `docker` in the getty shell loads two images
// shipped as files, runs one (`docker run --rm` prints its message) and
// publishes the other's port, which the test reaches from the host
// through QEMU's forwarded port; a container reaches a server on the
// host (QEMU's 10.0.2.2, through the bridge and dockerd's NAT); over ssh (key from the config drive)
// `docker images` lists both. After a power-off, the second boot finds
// the images on the data disk and runs one again.
func TestBootDockerHostSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	t.Parallel()
	dir := t.TempDir()
	writeHelloImage(t, dir)
	writeProgramImage(t, dir, "web", webProgram, webImage)
	specPath := exampleSpec(t, dir, "docker-host", "hello.tar", "web.tar")
	if _, err := build.Run(context.Background(), build.Options{
		Specs: []string{specPath}, Dir: dir, Arch: []string{"amd64"}, Formats: []string{"kernel+initrd"},
	}); err != nil {
		t.Fatalf("building the docker host: %v", err)
	}
	authorized, signer := newSSHKey(t, "keel-test")
	host := diskMachine{
		dir: dir, kernel: filepath.Join(dir, "docker-host-amd64-kernel"),
		userData: sshUserData(t, dir, authorized), dataDisk: filepath.Join(dir, "data.raw"),
		// dockerd's log on the console: what a failure needs to be read.
		cmdline: "keel.console_log=1",
	}
	// dockerd answers a while after init reports its service running.
	const waitDocker = "until docker version >/dev/null 2>&1; do sleep 1; done; "

	t.Run("first boot", func(t *testing.T) {
		hostSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "the host answers a docker container")
		}))
		defer hostSrv.Close()
		hostURL := strings.Replace(hostSrv.URL, "127.0.0.1", "10.0.2.2", 1)
		sshPort, webPort := freePort(t), freePort(t)
		start := time.Now()
		m, expect := host.boot(t, fmt.Sprintf("%d:22", sshPort), fmt.Sprintf("%d:8080", webPort))
		for _, step := range []string{"format", "mount"} {
			expect(regexp.MustCompile(`keel: onboot ` + step + `: exited 0`))
		}
		expect(milestone("services-running"))
		if err := m.Send("\n" + waitDocker + "docker load -i /etc/keel/hello.tar && docker load -i /etc/keel/web.tar && " +
			"docker run --rm " + helloImage + " && docker run -d -p 8080:80 " + webImage + " && echo web-$((6*7))\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`(?m)^hello from a keel container`))
		// A measurement for docs and reports (TCG boots vary widely).
		t.Logf("QEMU start to `docker run` output (images loaded first): %v", time.Since(start).Round(time.Second))
		expect(regexp.MustCompile(`(?m)^web-42`))

		if err := m.Send("docker run --rm " + webImage + " /web " + hostURL + "/\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`(?m)^the host answers a docker container`))

		body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", webPort))
		if body != "hello over http from a docker container\n" {
			t.Errorf("GET through the published port: %q", body)
		}

		out := sshRun(t, fmt.Sprintf("127.0.0.1:%d", sshPort), ssh.PublicKeys(signer), "docker images --format '{{.Repository}}:{{.Tag}}'")
		for _, img := range []string{helloImage, webImage} {
			if !strings.Contains(out, img) {
				t.Errorf("docker images over ssh lists no %s:\n%s", img, out)
			}
		}
		powerOff(t, m, expect)
	})
	if t.Failed() {
		return
	}
	t.Run("second boot", func(t *testing.T) {
		m, expect := host.boot(t)
		// The disk holds a file system now: format finds no empty disk.
		expect(regexp.MustCompile(`keel-format: no empty virtio disk: nothing to format`))
		expect(regexp.MustCompile(`keel: onboot mount: exited 0`))
		expect(milestone("services-running"))
		if err := m.Send("\n" + waitDocker + "docker images --format 'image {{.Repository}}:{{.Tag}}' && docker run --rm " + helloImage + "\n"); err != nil {
			t.Fatal(err)
		}
		expect(regexp.MustCompile(`(?m)^image ` + regexp.QuoteMeta(helloImage)))
		expect(regexp.MustCompile(`(?m)^hello from a keel container`))
		if strings.Contains(m.Console(), "keel-format: formatted") {
			t.Error("the second boot formatted the data disk again")
		}
		powerOff(t, m, expect)
	})
}

// httpGet fetches url, retrying while the guest's port forward and the
// container come up, and returns the body of the first answer.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	var err error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var resp *http.Response
		if resp, err = c.Get(url); err != nil {
			continue
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if rerr != nil {
			err = rerr
			continue
		}
		return string(b)
	}
	t.Fatalf("GET %s: %v", url, err)
	return ""
}
