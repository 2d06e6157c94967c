package build

import (
	"bytes"
	"context"
	"fmt"

	"github.com/keelos/keel/internal/source"
	"github.com/keelos/keel/internal/spec"
)

// dryRun writes the spec as the build sees it and, after it as TOML
// comments (so the output still loads as a spec), the effective
// configuration of every container on every architecture, each key with
// where its value came from. The container images are resolved (local
// packages built) and every check of the build runs on them, but nothing
// is assembled or written.
func dryRun(ctx context.Context, opts Options, s *spec.Spec, res *source.Resolver) error {
	out, err := spec.Marshal(s)
	if err != nil {
		return err
	}
	buf := bytes.NewBuffer(out)
	kinds := []struct {
		kind string
		list []spec.Container
	}{{"onboot", s.Onboot}, {"service", s.Services}, {"onshutdown", s.Onshutdown}}
	header := false
	for _, arch := range s.Arch {
		for _, k := range kinds {
			for _, c := range k.list {
				opts.progress(fmt.Sprintf("%s: %s %s: resolving %s", arch, k.kind, c.Name, c.Image.Ref))
				img, origin, err := res.Resolve(ctx, c.Image, arch)
				if err != nil {
					return fmt.Errorf("%s: %s %q: %w", arch, k.kind, c.Name, err)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					return fmt.Errorf("%s: %s %q: image config: %w", arch, k.kind, c.Name, err)
				}
				cc, err := effectiveConfig(k.kind, c, origin, cf, s.Volumes, opts.Specs)
				if err != nil {
					return fmt.Errorf("%s: %s %q: %w", arch, k.kind, c.Name, err)
				}
				if !header {
					buf.WriteString("\n# Effective configuration of each container (keel build --dry-run):\n" +
						"# the image's label, overridden key by key by the spec entry, with the\n" +
						"# image's own config for what neither sets. After each key: where its\n" +
						"# value came from.\n")
					header = true
				}
				trust := "its label is untrusted"
				if origin.Trusted() {
					trust = "its label is trusted"
				}
				fmt.Fprintf(buf, "#\n# %s %s %q: image %q (%s; %s)\n", arch, k.kind, c.Name, c.Image.Ref, origin, trust)
				for _, set := range cc.shown.Settings() {
					fmt.Fprintf(buf, "#   %s  # %s\n", set, cc.from[set.Key])
				}
			}
		}
	}
	_, err = opts.Stdout.Write(buf.Bytes())
	return err
}
