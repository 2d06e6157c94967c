package main

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/pflag"

	"github.com/keelos/keel/internal/buildkit"
)

// builderFlags say which BuildKit daemon solves the [build] steps of
// packages that have them (and how its progress is shown). Packages
// without [build], and packages the cache already holds, never contact it.
type builderFlags struct {
	addr, caCert, cert, key, serverName, progress string
}

var progressModes = []string{"auto", "plain", "tty", "quiet", "rawjson"}

func addBuilderFlags(f *pflag.FlagSet, bf *builderFlags) {
	f.StringVar(&bf.addr, "builder", os.Getenv(buildkit.EnvHost),
		"BuildKit daemon for packages with [build] steps: unix://PATH, tcp://HOST:PORT or docker-container://NAME ("+buildkit.EnvHost+"; default "+buildkit.DefaultAddr+")")
	f.StringVar(&bf.caCert, "builder-tlscacert", os.Getenv(buildkit.EnvTLSCACert), "CA certificate of a tcp:// builder ("+buildkit.EnvTLSCACert+")")
	f.StringVar(&bf.cert, "builder-tlscert", os.Getenv(buildkit.EnvTLSCert), "client certificate for a tcp:// builder ("+buildkit.EnvTLSCert+")")
	f.StringVar(&bf.key, "builder-tlskey", os.Getenv(buildkit.EnvTLSKey), "client key for a tcp:// builder ("+buildkit.EnvTLSKey+")")
	f.StringVar(&bf.serverName, "builder-tlsservername", os.Getenv(buildkit.EnvTLSServerName), "name in the builder's certificate (default: the host of --builder) ("+buildkit.EnvTLSServerName+")")
	f.StringVar(&bf.progress, "progress", "auto", "BuildKit's progress display on stderr: auto, plain, tty, quiet or rawjson")
}

// config is the builder configuration, with BuildKit's progress display
// on progress.
func (bf *builderFlags) config(progress io.Writer) (*buildkit.Config, error) {
	if !slices.Contains(progressModes, bf.progress) {
		return nil, usageError(fmt.Errorf("--progress %q: want one of %v", bf.progress, progressModes))
	}
	return &buildkit.Config{
		Addr: bf.addr, CACert: bf.caCert, Cert: bf.cert, Key: bf.key, ServerName: bf.serverName,
		Progress: progress, ProgressMode: bf.progress,
	}, nil
}
