package build

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/keelos/keel/internal/ctxio"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/verity"
)

// verityModules are the kernel modules init needs to open a verified
// root through device-mapper (dm_mod and dm_bufio come as dependencies).
var verityModules = []string{"dm_verity"}

// defaultVerityCorruption is [output] verity-corruption when unset.
const defaultVerityCorruption = "restart"

// addVerity writes the dm-verity hash tree of the root image img, whose
// SHA-256 is sum, to a file of its own in the staging directory, makes it
// img's hash partition (removed with img), and returns the keel.verity.*
// command line parameters that init/internal/dmverity reads. The salt and
// the superblock's UUID follow from the image, so the same root gives the
// same tree.
func (b *builder) addVerity(ctx context.Context, arch string, img *rootImage, sum []byte) ([]string, error) {
	start := time.Now()
	f, err := os.CreateTemp(b.stage, "."+b.spec.Name+"-"+arch+"-verity.*.tmp")
	if err != nil {
		return nil, fmt.Errorf("verity: %w", err)
	}
	p, err := verity.Write(ctxio.WriterAt(ctx, f), img.f, img.size, verity.Salt(sum))
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	typ := gpt.Type(verity.PartitionTypeAmd64)
	if arch == "arm64" {
		typ = gpt.Type(verity.PartitionTypeArm64)
	}
	img.hashTree = &rootImage{f: f, size: p.HashSize(), label: fmt.Sprintf("keel-verity-%x", p.RootHash[:8]), typ: typ}
	policy := b.spec.Output.VerityCorruption
	if policy == "" {
		policy = defaultVerityCorruption
	}
	b.logf("%s: verity: %s hash tree over %d blocks in %.1fs, root hash %x", arch, humanSize(p.HashSize()), p.DataBlocks, time.Since(start).Seconds(), p.RootHash)
	return []string{
		fmt.Sprintf("%s=%x", layout.CmdlineVerityRootHash, p.RootHash),
		fmt.Sprintf("%s=PARTLABEL=%s", layout.CmdlineVerityHash, img.hashTree.label),
		fmt.Sprintf("%s=%x", layout.CmdlineVeritySalt, p.Salt),
		fmt.Sprintf("%s=%d", layout.CmdlineVerityDataBlocks, p.DataBlocks),
		fmt.Sprintf("%s=%s", layout.CmdlineVerityCorruption, policy),
	}, nil
}
