package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/hostfile"
	"github.com/keelos/keel/internal/imagelabel"
	"github.com/keelos/keel/internal/lock"
	"github.com/keelos/keel/internal/sbom"
	"github.com/keelos/keel/internal/spec"
)

// bom collects what one architecture's image is made of.
type bom struct {
	images []sbom.Image
	debs   []sbom.DebianPackage
}

// recordImage notes an image the build used, and the Debian packages its
// org.keel.debian label lists.
func (m *bom) recordImage(role, name string, ref spec.ImageRef, img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	m.images = append(m.images, sbom.Image{Role: role, Name: name, Ref: ref.Ref, Digest: d.String()})
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if label := cf.Config.Labels[imagelabel.Debian]; label != "" {
		debs, err := sbom.DebianFromLabel(label, name)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref.Ref, err)
		}
		m.debs = append(m.debs, debs...)
	}
	return nil
}

// addProvenance writes /etc/keel/provenance.json and the SBOM into root
// and returns the SBOM, which also goes next to the outputs.
func (b *builder) addProvenance(ctx context.Context, root *fstree.Tree, arch, kernelVersion string, kernel, resolvedSpec []byte, m *bom) ([]byte, error) {
	lockSum, err := b.lockDigest(ctx)
	if err != nil {
		return nil, err
	}
	specSum := sha256.Sum256(resolvedSpec)
	kernelSum := sha256.Sum256(kernel)
	in := sbom.Input{
		Name: b.spec.Name, Arch: arch, Kernel: kernelVersion, KernelSHA256: hex.EncodeToString(kernelSum[:]),
		Images: m.images, Debian: m.debs,
		SpecSHA256: hex.EncodeToString(specSum[:]), LockSHA256: lockSum,
		Tool: "keel-" + b.version(), Created: b.epoch,
	}
	// Every Go binary's build info names the modules compiled into it.
	seen := map[string][]sbom.GoModule{}
	for _, e := range root.Entries() {
		if !e.Mode.IsRegular() || e.Mode&0o111 == 0 || e.Size < 1024 {
			continue
		}
		mods, ok := seen[e.Digest]
		if !ok {
			f, err := root.Store().Open(e.Digest)
			if err != nil {
				return nil, fmt.Errorf("sbom: /%s: %w", e.Path, err)
			}
			mods, err = sbom.GoModules(f, "/"+e.Path)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("sbom: /%s: %w", e.Path, err)
			}
			seen[e.Digest] = mods
		}
		for _, mod := range mods {
			mod.Binary = "/" + e.Path
			in.Go = append(in.Go, mod)
		}
	}
	doc, err := sbom.Marshal(in)
	if err != nil {
		return nil, err
	}
	prov, err := sbom.Provenance{SpecSHA256: in.SpecSHA256, LockSHA256: lockSum, KeelVersion: b.version()}.Marshal()
	if err != nil {
		return nil, err
	}
	if err := root.AddFile(sbom.SBOMPath, 0o644, 0, 0, bytes.NewReader(doc)); err != nil {
		return nil, err
	}
	if err := root.AddFile(sbom.ProvenancePath, 0o644, 0, 0, bytes.NewReader(prov)); err != nil {
		return nil, err
	}
	return doc, nil
}

// lockDigest is the SHA-256 of build.lock next to the first spec, or ""
// when there is none.
func (b *builder) lockDigest(ctx context.Context) (string, error) {
	data, err := hostfile.ReadFile(ctx, filepath.Dir(b.opts.Specs[0]), lock.FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func (b *builder) version() string {
	if b.opts.Version == "" {
		return "dev"
	}
	return b.opts.Version
}
