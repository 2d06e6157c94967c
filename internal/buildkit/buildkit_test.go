package buildkit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/solver/pb"
)

// ops decodes a definition's operations.
func ops(t *testing.T, req *Request) ([]*pb.Op, []string) {
	t.Helper()
	def, locals, err := Definition(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.Op
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		out = append(out, &op)
	}
	var names []string
	for n := range locals {
		names = append(names, n)
	}
	slices.Sort(names)
	return out, names
}

func request(dir string) *Request {
	return &Request{
		Name:     "x",
		Platform: Platform{OS: "linux", Arch: "arm64", Variant: "v8"},
		Base:     Source{Tar: filepath.Join(dir, "base", "rootfs.tar")},
		Context:  dir,
		Steps: []Step{
			{Copy: "src", To: "/src"},
			{Run: "make\nmake install", Env: []string{"FOO=bar=baz"}, Cwd: "/src", Cache: []string{"/root/.cache"}},
		},
		Output: []string{"/usr/bin/x"},
	}
}

// TestDefinition checks the LLB keel sends: a base unpacked from a local
// tar, a copy from the package directory, a run step with its env, cwd,
// cache mount and no network, for the target platform, and only
// the output paths copied into the result.
func TestDefinition(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "base"), 0o755); err != nil {
		t.Fatal(err)
	}
	all, locals := ops(t, request(dir))
	if strings.Join(locals, " ") != "base-0 context-1" {
		t.Errorf("locals %v", locals)
	}
	var execs, copies []string
	var sources []string
	for _, op := range all {
		// Only run steps and images carry a platform (BuildKit drops
		// arm64's v8 as the default variant).
		if p := op.GetPlatform(); op.GetExec() != nil && (p == nil || p.GetArchitecture() != "arm64" || p.GetOS() != "linux") {
			t.Errorf("op %v: platform %v", op.GetOp(), p)
		}
		if s := op.GetSource(); s != nil {
			sources = append(sources, s.GetIdentifier())
		}
		if f := op.GetFile(); f != nil {
			for _, a := range f.GetActions() {
				if c := a.GetCopy(); c != nil {
					copies = append(copies, c.GetSrc()+"->"+c.GetDest())
					if c.GetSrc() == "/rootfs.tar" && !c.GetAttemptUnpackDockerCompatibility() {
						t.Errorf("the base tar is copied, not unpacked")
					}
				}
			}
		}
		e := op.GetExec()
		if e == nil {
			continue
		}
		m := e.GetMeta()
		execs = append(execs, strings.Join(m.GetArgs(), " "))
		if m.GetCwd() != "/src" || e.GetNetwork() != pb.NetMode_NONE {
			t.Errorf("exec: cwd %q network %v", m.GetCwd(), e.GetNetwork())
		}
		for _, want := range []string{"FOO=bar=baz", "PATH=" + DefaultPath, "TARGETARCH=arm64", "TARGETPLATFORM=linux/arm64/v8"} {
			if !slices.Contains(m.GetEnv(), want) {
				t.Errorf("exec env %v lacks %s", m.GetEnv(), want)
			}
		}
		var cache []string
		for _, mnt := range e.GetMounts() {
			if mnt.GetMountType() == pb.MountType_CACHE {
				cache = append(cache, mnt.GetDest()+"="+mnt.GetCacheOpt().GetID())
			}
		}
		if strings.Join(cache, " ") != "/root/.cache=keel:linux/arm64/v8:/root/.cache" {
			t.Errorf("cache mounts %v", cache)
		}
	}
	slices.Sort(sources)
	if strings.Join(sources, " ") != "local://base-0 local://context-1" {
		t.Errorf("sources %v", sources)
	}
	if strings.Join(execs, "|") != "/bin/sh -ec make\nmake install" {
		t.Errorf("execs %q", execs)
	}
	slices.Sort(copies)
	if strings.Join(copies, " ") != "/rootfs.tar->/ /src->/src /usr/bin/x->/usr/bin/x" {
		t.Errorf("copies %v", copies)
	}

	// network = true gives the step the builder's network.
	req := request(dir)
	req.Network = true
	all, _ = ops(t, req)
	for _, op := range all {
		if e := op.GetExec(); e != nil && e.GetNetwork() != pb.NetMode_UNSET {
			t.Errorf("network = true: %v", e.GetNetwork())
		}
	}
	// An image base is pulled by the builder for the target platform.
	req.Base = Source{Image: "docker.io/library/debian:bookworm"}
	all, _ = ops(t, req)
	found := false
	for _, op := range all {
		if s := op.GetSource(); s != nil && s.GetIdentifier() == "docker-image://docker.io/library/debian:bookworm" {
			found = op.GetPlatform().GetArchitecture() == "arm64"
		}
	}
	if !found {
		t.Errorf("no arm64 image source")
	}
}

// TestConfigErrors: addresses and TLS settings keel cannot use fail before
// any connection, and an address where nothing listens says how to start
// a builder.
func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "/run/buildkitd.sock"}, "want unix://PATH"},
		{Config{Addr: "ssh://host"}, `scheme "ssh" not supported`},
		{Config{Addr: "unix:///x.sock", CACert: "ca.pem"}, "tcp:// addresses only"},
		{Config{Addr: "tcp://127.0.0.1:1", Cert: "c.pem"}, "needs its key"},
	} {
		if err := c.cfg.Ping(ctx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	start := time.Now()
	err := Config{Addr: "unix://" + filepath.Join(t.TempDir(), "none.sock"), ConnectTimeout: 5 * time.Second}.Ping(ctx)
	var nr *NotReachableError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "buildkitd --addr unix:///run/buildkit/buildkitd.sock") {
		t.Fatalf("got %v", err)
	}
	t.Logf("unreachable after %v: %v", time.Since(start), err)
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(EnvHost, "tcp://b:1234")
	t.Setenv(EnvTLSCACert, "ca")
	t.Setenv(EnvTLSCert, "cert")
	t.Setenv(EnvTLSKey, "key")
	t.Setenv(EnvTLSServerName, "name")
	if c := ConfigFromEnv(); c != (Config{Addr: "tcp://b:1234", CACert: "ca", Cert: "cert", Key: "key", ServerName: "name"}) {
		t.Errorf("%+v", c)
	}
}
