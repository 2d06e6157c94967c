// Package buildkit turns a package's [build] section into BuildKit's LLB
// and solves it on a buildkitd, local or remote. It is the only package of
// keel that imports BuildKit's client (about forty modules): everything
// else talks to it through Request and Config.
//
// Inputs keel built itself (the package's own Go/Debian/file parts,
// other packages) reach the builder as local contexts — a tar of the
// filesystem sent over the client's session and unpacked by the builder —
// so no registry is needed. The result is
// exported as an OCI tarball that the caller turns into keel's own
// deterministic layers.
package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer" // docker-container:// addresses
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/util/progress/progressui"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// Environment variables read by ConfigFromEnv; the flags of `keel pkg
// build` (--builder, --builder-tlscacert, …) override them.
const (
	EnvHost          = "KEEL_BUILDKIT_HOST"
	EnvTLSCACert     = "KEEL_BUILDKIT_TLS_CA"
	EnvTLSCert       = "KEEL_BUILDKIT_TLS_CERT"
	EnvTLSKey        = "KEEL_BUILDKIT_TLS_KEY"
	EnvTLSServerName = "KEEL_BUILDKIT_TLS_SERVERNAME"
)

// Version names how this package turns a [build] into LLB: it enters
// the input hash of every package with [build], so a change to the
// generated graph rebuilds them.
const Version = "keel-llb/1"

// DefaultAddr is where buildkitd listens when started without --addr.
const DefaultAddr = "unix:///run/buildkit/buildkitd.sock"

// DefaultPath is the PATH of every run step that sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config says how to reach a builder.
type Config struct {
	// Addr is unix://PATH, tcp://HOST:PORT or docker-container://NAME;
	// empty means DefaultAddr.
	Addr string
	// TLS, for tcp:// builders: the CA that signed the server's
	// certificate, the client's certificate and key, and the name to
	// verify the server's certificate against (default: the host of
	// Addr). As buildctl's --tlscacert, --tlscert, --tlskey,
	// --tlsservername.
	CACert, Cert, Key, ServerName string
	// Progress receives BuildKit's progress display; nil shows none.
	Progress io.Writer
	// ProgressMode is progressui's mode: auto (default), plain, tty,
	// quiet, rawjson.
	ProgressMode string
	// ConnectTimeout bounds the first contact with the builder
	// (default 20s).
	ConnectTimeout time.Duration
}

// ConfigFromEnv reads KEEL_BUILDKIT_HOST and the TLS variables.
func ConfigFromEnv() Config {
	return Config{
		Addr:       os.Getenv(EnvHost),
		CACert:     os.Getenv(EnvTLSCACert),
		Cert:       os.Getenv(EnvTLSCert),
		Key:        os.Getenv(EnvTLSKey),
		ServerName: os.Getenv(EnvTLSServerName),
	}
}

func (c Config) addr() string {
	if c.Addr == "" {
		return DefaultAddr
	}
	return c.Addr
}

// Platform is a target platform.
type Platform struct {
	OS, Arch, Variant string
}

func (p Platform) oci() ocispecs.Platform {
	return ocispecs.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Source is a filesystem a build starts from or copies out of.
type Source struct {
	// Image is a registry reference pulled by the builder. Else Tar is a
	// tar of a filesystem on this host, sent as a local context and
	// unpacked by the builder with the owners, modes and file types it
	// holds (a plain directory would not do: BuildKit's client sends
	// every local file as owned by root). Both empty: scratch.
	Image string
	Tar   string
}

// Step is one ordered build step: a Run, or a Copy to To.
type Step struct {
	Run   string
	Env   []string // KEY=value
	Cwd   string
	Cache []string // persistent cache mounts, shared by every build on the builder

	Copy string  // a path in the package directory, or in From
	To   string  // absolute destination
	From *Source // nil: the package directory
}

// Request is one package build for one platform.
type Request struct {
	Name     string // the package name, for progress and cache mount ids
	Platform Platform
	Base     Source
	Context  string // the package directory, for copy steps
	Steps    []Step
	Output   []string // paths of the result that form the package; empty: all
	Network  bool     // run steps reach the network; default: none
}

// Definition turns req into LLB, and the local directories it needs by
// name. It never contacts a builder.
func Definition(ctx context.Context, req *Request) (*llb.Definition, map[string]fsutil.FS, error) {
	d := &definer{req: req, locals: map[string]fsutil.FS{}, dirs: map[string]string{}}
	st, err := d.state()
	if err != nil {
		return nil, nil, err
	}
	def, err := st.Marshal(ctx, llb.Platform(req.Platform.oci()))
	if err != nil {
		return nil, nil, fmt.Errorf("marshalling LLB: %w", err)
	}
	return def, d.locals, nil
}

type definer struct {
	req    *Request
	locals map[string]fsutil.FS
	dirs   map[string]string // host dir -> local name
}

// local names a host directory as a local context.
func (d *definer) local(dir, hint string, include []string) (llb.State, error) {
	name, ok := d.dirs[dir]
	if !ok {
		name = fmt.Sprintf("%s-%d", hint, len(d.dirs))
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return llb.State{}, fmt.Errorf("local context %s: %w", dir, err)
		}
		d.locals[name] = fs
		d.dirs[dir] = name
	}
	opts := []llb.LocalOption{llb.SharedKeyHint(d.req.Name + "/" + name), llb.WithCustomName("keel: " + hint + " of " + d.req.Name)}
	if len(include) > 0 {
		opts = append(opts, llb.IncludePatterns(include))
	}
	return llb.Local(name, opts...), nil
}

func (d *definer) source(s Source, hint string) (llb.State, error) {
	plat := d.req.Platform.oci()
	switch {
	case s.Image != "":
		return llb.Image(s.Image, llb.Platform(plat)), nil
	case s.Tar != "":
		name := filepath.Base(s.Tar)
		ctx, err := d.local(filepath.Dir(s.Tar), hint, []string{name})
		if err != nil {
			return ctx, err
		}
		return llb.Scratch().Platform(plat).File(llb.Copy(ctx, name, "/", &llb.CopyInfo{AttemptUnpack: true}),
			llb.WithCustomName("keel: unpack "+hint+" of "+d.req.Name)), nil
	}
	return llb.Scratch().Platform(plat), nil
}

func (d *definer) state() (llb.State, error) {
	req := d.req
	st, err := d.source(req.Base, "base")
	if err != nil {
		return st, err
	}
	plat := req.Platform
	for i, s := range req.Steps {
		switch {
		case s.Run != "" && s.Copy != "":
			return st, fmt.Errorf("step %d: both run and copy", i)
		case s.Run != "":
			st, err = d.run(st, i, s)
		case s.Copy != "":
			st, err = d.copy(st, i, s)
		default:
			return st, fmt.Errorf("step %d: neither run nor copy", i)
		}
		if err != nil {
			return st, err
		}
	}
	if len(req.Output) == 0 {
		return st, nil
	}
	// Only the output paths leave the builder.
	out := llb.Scratch().Platform(plat.oci())
	for _, o := range req.Output {
		out = out.File(llb.Copy(st, o, o, &llb.CopyInfo{CreateDestPath: true, AllowWildcard: true}),
			llb.WithCustomName("keel: output "+o))
	}
	return out, nil
}

func (d *definer) run(st llb.State, i int, s Step) (llb.State, error) {
	req := d.req
	plat := req.Platform
	env := []string{"PATH=" + DefaultPath, "TARGETOS=" + plat.OS, "TARGETARCH=" + plat.Arch,
		"TARGETVARIANT=" + plat.Variant, "TARGETPLATFORM=" + plat.String()}
	env = append(env, s.Env...)
	for _, e := range env {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			return st, fmt.Errorf("step %d: env %q is not KEY=value", i, e)
		}
		st = st.AddEnv(k, v)
	}
	if s.Cwd != "" {
		st = st.Dir(s.Cwd)
	}
	net := llb.NetModeNone
	if req.Network {
		net = llb.NetModeSandbox
	}
	st = st.Network(net)
	opts := []llb.RunOption{
		// -e: a script fails at its first failing command.
		llb.Args([]string{"/bin/sh", "-ec", s.Run}),
		llb.WithCustomNamef("keel: %s [%s] step %d: %s", req.Name, plat, i, firstLine(s.Run)),
	}
	for _, c := range s.Cache {
		// One cache per target path and platform, shared by every
		// package built on this builder (as a Dockerfile's
		// RUN --mount=type=cache,target=… without an id).
		opts = append(opts, llb.AddMount(c, llb.Scratch(),
			llb.AsPersistentCacheDir("keel:"+plat.String()+":"+c, llb.CacheMountShared)))
	}
	return st.Run(opts...).Root(), nil
}

func (d *definer) copy(st llb.State, i int, s Step) (llb.State, error) {
	var src llb.State
	var err error
	if s.From != nil {
		src, err = d.source(*s.From, fmt.Sprintf("step-%d", i))
	} else {
		src, err = d.local(d.req.Context, "context", nil)
	}
	if err != nil {
		return st, err
	}
	return st.File(llb.Copy(src, s.Copy, s.To, &llb.CopyInfo{
		CopyDirContentsOnly: true,
		CreateDestPath:      true,
		AllowWildcard:       true,
		FollowSymlinks:      true,
	}), llb.WithCustomNamef("keel: %s [%s] step %d: copy %s %s", d.req.Name, d.req.Platform, i, s.Copy, s.To)), nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// NotReachableError says that no builder answered at Addr.
type NotReachableError struct {
	Addr string
	Err  error
}

func (e *NotReachableError) Error() string {
	return fmt.Sprintf("no BuildKit builder reachable at %s: %v\n"+
		"  start one (as root, with runc installed):\n"+
		"    buildkitd --addr unix:///run/buildkit/buildkitd.sock --oci-worker-binary=$(command -v runc)\n"+
		"  or point keel at one with --builder ADDR or %s=ADDR\n"+
		"  (unix://PATH, tcp://HOST:PORT with --builder-tlscacert/--builder-tlscert/--builder-tlskey, docker-container://NAME)",
		e.Addr, e.Err, EnvHost)
}

func (e *NotReachableError) Unwrap() error { return e.Err }

// connect opens a client and checks the builder answers.
func (c Config) connect(ctx context.Context) (*client.Client, error) {
	addr := c.addr()
	u, err := url.Parse(addr)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("builder address %q: want unix://PATH, tcp://HOST:PORT or docker-container://NAME", addr)
	}
	var opts []client.ClientOpt
	switch u.Scheme {
	case "unix", "docker-container":
		if c.CACert != "" || c.Cert != "" || c.Key != "" {
			return nil, fmt.Errorf("builder %s: TLS certificates apply to tcp:// addresses only", addr)
		}
	case "tcp":
		if (c.Cert == "") != (c.Key == "") {
			return nil, fmt.Errorf("builder %s: a TLS client certificate needs its key, and the key its certificate", addr)
		}
		if c.CACert != "" || c.Cert != "" {
			name := c.ServerName
			if name == "" {
				name = u.Hostname()
			}
			if c.CACert != "" {
				opts = append(opts, client.WithServerConfig(name, c.CACert))
			} else {
				opts = append(opts, client.WithServerConfigSystem(name))
			}
			if c.Cert != "" {
				opts = append(opts, client.WithCredentials(c.Cert, c.Key))
			}
		}
	default:
		return nil, fmt.Errorf("builder address %q: scheme %q not supported: want unix://, tcp:// or docker-container://", addr, u.Scheme)
	}
	cl, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, &NotReachableError{Addr: addr, Err: err}
	}
	timeout := c.ConnectTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cl.Info(ictx); err != nil {
		cl.Close()
		return nil, &NotReachableError{Addr: addr, Err: err}
	}
	return cl, nil
}

// Ping checks that a builder answers at c's address.
func (c Config) Ping(ctx context.Context) error {
	cl, err := c.connect(ctx)
	if err != nil {
		return err
	}
	return cl.Close()
}

// Solve builds req on the builder and writes the result, an OCI image
// layout as a tar, to ociTar.
func (c Config) Solve(ctx context.Context, req *Request, ociTar string) error {
	def, locals, err := Definition(ctx, req)
	if err != nil {
		return err
	}
	cl, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	opt := client.SolveOpt{
		LocalMounts: locals,
		Exports: []client.ExportEntry{{
			Type: client.ExporterOCI,
			// Layers are re-written by keel anyway: spare the builder
			// compressing them.
			Attrs: map[string]string{"compression": "uncompressed"},
			Output: func(map[string]string) (io.WriteCloser, error) {
				return os.Create(ociTar)
			},
		}},
	}
	ch := make(chan *client.SolveStatus)
	eg, gctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		_, err := cl.Solve(gctx, def, opt, ch)
		return err
	})
	eg.Go(func() error {
		if c.Progress == nil {
			for range ch {
			}
			return nil
		}
		mode := progressui.DisplayMode(c.ProgressMode)
		disp, err := progressui.NewDisplay(c.Progress, mode)
		if err != nil {
			for range ch {
			}
			return err
		}
		// The display follows the solve to its end, even when it fails,
		// so the failing step's output is shown.
		_, err = disp.UpdateFrom(context.WithoutCancel(gctx), ch)
		return err
	})
	if err := eg.Wait(); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("BuildKit solve on %s: %w", c.addr(), err)
	}
	return nil
}
