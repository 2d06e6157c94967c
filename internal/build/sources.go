package build

import (
	"context"
	"fmt"

	"github.com/keelos/keel/internal/hostfile"
	"github.com/keelos/keel/internal/spec"
)

// checkSources opens every [[file]] source of the spec before anything is
// built, so a source keel refuses (a symlink out of the spec's directory,
// a FIFO, a device, a file over hostfile.MaxSize) fails the build at once,
// naming the spec file and the entry. addFile opens each again, with the
// same checks, when it reads it.
func checkSources(ctx context.Context, s *spec.Spec) error {
	for _, f := range s.Files {
		if f.Source == "" {
			continue
		}
		src, err := hostfile.Open(ctx, f.Dir, f.Source)
		if err != nil {
			return fmt.Errorf("%s: [[file]] %s: source %w", f.Origin, f.Path, err)
		}
		src.Close()
	}
	return nil
}
