package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/format"
	"github.com/keelos/keel/internal/imageread"
	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/sbom"
	"github.com/keelos/keel/internal/spec"
)

// inspectReport is `keel inspect --json`: everything inspect prints, for
// scripts. Provenance and SBOM are null when the image holds none (images
// from before they were recorded).
type inspectReport struct {
	Image      string           `json:"image"`
	Format     string           `json:"format"`
	Layers     []string         `json:"layers"`
	Spec       string           `json:"spec"`
	SpecSHA256 string           `json:"spec_sha256"` // of the spec as read from the image
	Provenance *sbom.Provenance `json:"provenance"`
	SBOM       *sbom.Summary    `json:"sbom"`
	Volumes    []inspectVolume  `json:"volumes"`
	Warnings   []string         `json:"warnings"` // [] when there is none: the key is always there
}

func newInspectCmd() *cobra.Command {
	var (
		asJSON bool
		file   string
	)
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show what a built image was built from: spec, build.lock digest, SBOM",
		Long: `Inspect reads /etc/keel from inside any output keel writes (NAME-ARCH` + outputSuffixes() + `),
without mounting or unpacking it, and prints its format, the resolved spec
the image was built from, the digests of that spec and of build.lock, and a
summary of the image's SBOM (kernel, images by digest, Debian packages, Go
modules).

--file prints one file of the image's root instead, e.g.
  keel inspect --file /etc/keel/sbom.spdx.json host-amd64-efi.iso`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(fmt.Errorf("inspect: want one IMAGE, got %d arguments", len(args)))
			}
			if asJSON && file != "" {
				return usageError(errors.New("inspect: --json and --file do not go together"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			fail := func(err error) error {
				// "keel inspect: x.img: open x.img: …" says the name twice.
				var pe *fs.PathError
				if errors.As(err, &pe) && pe.Path == path {
					err = pe.Err
				}
				return fmt.Errorf("keel inspect: %s: %w", path, err)
			}
			im, err := imageread.Open(path)
			if err != nil {
				return fail(err)
			}
			defer im.Close()
			out := cmd.OutOrStdout()
			if file != "" {
				data, err := im.ReadFile(file)
				if err != nil {
					return fail(err)
				}
				_, err = out.Write(data)
				return err
			}
			rep, err := inspectImage(im)
			if err != nil {
				return fail(err)
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return writeInspectText(out, rep)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print a JSON report")
	f.StringVar(&file, "file", "", "print this file of the image's root instead, e.g. /etc/keel/build.toml")
	return cmd
}

// inspectVolume is one [[volume]] of the image's spec and, on a disk
// image, the GPT partition that holds it.
type inspectVolume struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Partition is the volume's partition number on a disk image, 0 on a
	// format without a disk (init then looks for a disk at boot).
	Partition     int   `json:"partition,omitempty"`
	PartitionSize int64 `json:"partition_size,omitempty"`
}

// volumes lists the volumes of the image's spec with their partitions.
func volumes(im *imageread.Image, specData []byte) ([]inspectVolume, error) {
	s, err := spec.Parse("/"+sbom.SpecPath, specData)
	if err != nil {
		return nil, err
	}
	out := []inspectVolume{}
	for _, v := range s.Volumes {
		iv := inspectVolume{Name: v.Name, Size: v.Size.Bytes()}
		if p, ok := im.Partitions.ByName(v.Name); ok {
			iv.Partition, iv.PartitionSize = p.Number, p.Size
		}
		out = append(out, iv)
	}
	return out, nil
}

// outputSuffixes lists the file names of every format, after NAME-ARCH.
func outputSuffixes() string {
	var suffixes []string
	for _, f := range format.All() {
		suffixes = append(suffixes, f.Suffixes...)
	}
	return strings.Join(suffixes, ", ")
}

// inspectImage reads /etc/keel in one pass over the image's root.
func inspectImage(im *imageread.Image) (*inspectReport, error) {
	files, _, err := im.ReadFiles(sbom.SpecPath, sbom.ProvenancePath, sbom.SBOMPath)
	if err != nil {
		return nil, err
	}
	specData, ok := files[sbom.SpecPath]
	if !ok {
		return nil, fmt.Errorf("not a keel image: no /%s", sbom.SpecPath)
	}
	sum := sha256.Sum256(specData)
	rep := &inspectReport{
		Image: im.Path, Format: im.Format, Layers: im.Layers,
		Spec: string(specData), SpecSHA256: hex.EncodeToString(sum[:]),
		Warnings: []string{},
	}
	if rep.Volumes, err = volumes(im, specData); err != nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("/%s: %v", sbom.SpecPath, err))
	}
	if data, ok := files[sbom.ProvenancePath]; ok {
		p, err := sbom.ParseProvenance(data)
		if err != nil {
			return nil, fmt.Errorf("/%s: %w", sbom.ProvenancePath, err)
		}
		rep.Provenance = &p
		// The spec is there to say what the image was built from; a
		// mismatch means someone edited the image after the build.
		if p.SpecSHA256 != "" && p.SpecSHA256 != rep.SpecSHA256 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("/%s has SHA-256 %s, provenance records %s", sbom.SpecPath, rep.SpecSHA256, p.SpecSHA256))
		}
	} else {
		rep.Warnings = append(rep.Warnings, "no /"+sbom.ProvenancePath+": the image predates provenance records")
	}
	if data, ok := files[sbom.SBOMPath]; ok {
		s, err := sbom.Summarize(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("/%s: %w", sbom.SBOMPath, err)
		}
		rep.SBOM = &s
	} else {
		rep.Warnings = append(rep.Warnings, "no /"+sbom.SBOMPath+": the image predates SBOMs")
	}
	return rep, nil
}

func writeInspectText(w io.Writer, rep *inspectReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "image:       %s\n", rep.Image)
	fmt.Fprintf(&b, "format:      %s (%s)\n", rep.Format, strings.Join(rep.Layers, " > "))
	if p := rep.Provenance; p != nil {
		fmt.Fprintf(&b, "built by:    keel %s\n", orDash(p.KeelVersion))
		fmt.Fprintf(&b, "spec:        sha256:%s\n", orDash(p.SpecSHA256))
		if p.LockSHA256 != "" {
			fmt.Fprintf(&b, "build.lock:  sha256:%s\n", p.LockSHA256)
		} else {
			fmt.Fprintf(&b, "build.lock:  none (the build was not locked)\n")
		}
	} else {
		fmt.Fprintf(&b, "spec:        sha256:%s\n", rep.SpecSHA256)
		fmt.Fprintf(&b, "build.lock:  unknown\n")
	}
	for _, v := range rep.Volumes {
		where := "no partition in this image: at boot, a partition named so or an ext4 file system labelled so, else a tmpfs"
		if v.Partition != 0 {
			where = fmt.Sprintf("GPT partition %d, %d bytes", v.Partition, v.PartitionSize)
		}
		fmt.Fprintf(&b, "volume:      %s, %d bytes, mounted at %s (%s)\n", v.Name, v.Size, layout.VolumePath(v.Name), where)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(&b, "warning:     %s\n", warn)
	}
	fmt.Fprintf(&b, "\n# /%s\n%s", sbom.SpecPath, rep.Spec)
	if !strings.HasSuffix(rep.Spec, "\n") {
		b.WriteByte('\n')
	}
	if rep.SBOM != nil {
		b.WriteByte('\n')
		if err := rep.SBOM.WriteText(&b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
