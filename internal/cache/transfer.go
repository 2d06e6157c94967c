package cache

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// Export writes the images and indexes under keys (all of them when none
// is named) as an OCI image layout in a tar stream. The stream depends
// only on the content: sorted names, fixed times, no owners.
func (c *Cache) Export(w io.Writer, keys ...string) error {
	unlock, err := c.lock(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	im, err := c.readIndex()
	if err != nil {
		return fmt.Errorf("cache export: %w", err)
	}
	var descs []v1.Descriptor
	for _, d := range im.Manifests {
		if _, ok := d.Annotations[KeyAnnotation]; ok && (len(keys) == 0 || slices.Contains(keys, d.Annotations[KeyAnnotation])) {
			descs = append(descs, d)
		}
	}
	for _, k := range keys {
		if !slices.ContainsFunc(descs, func(d v1.Descriptor) bool { return d.Annotations[KeyAnnotation] == k }) {
			return fmt.Errorf("cache export: %s: %w", k, ErrNotFound)
		}
	}
	slices.SortFunc(descs, func(a, b v1.Descriptor) int {
		return strings.Compare(a.Annotations[KeyAnnotation], b.Annotations[KeyAnnotation])
	})
	blobs := map[string]int64{}
	for _, d := range descs {
		if err := c.reachable(d, blobs, needAll); err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
	}
	index, err := json.MarshalIndent(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs}, "", "   ")
	if err != nil {
		return fmt.Errorf("cache export: %w", err)
	}
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0).UTC()
	file := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatUSTAR})
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
	}
	for _, digest := range slices.Sorted(maps.Keys(blobs)) {
		h, err := v1.NewHash(digest)
		if err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
		if err := file("blobs/sha256/"+h.Hex, blobs[digest]); err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
		rc, err := c.openBlob(h, blobs[digest])
		if err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
		_, err = io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
	}
	layoutFile := []byte(`{"imageLayoutVersion": "1.0.0"}`)
	for _, f := range []struct {
		name string
		data []byte
	}{{"index.json", index}, {"oci-layout", layoutFile}} {
		if err := file(f.name, int64(len(f.data))); err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("cache export: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("cache export: %w", err)
	}
	return nil
}

// Import reads an OCI image layout tar (as Export writes, or any other
// tool's) into the cache: every blob is verified against its name, and
// each descriptor of its index.json is recorded under its keel key, else
// its org.opencontainers.image.ref.name, else its digest.
func (c *Cache) Import(r io.Reader) error {
	ctx := context.Background()
	tr := tar.NewReader(r)
	var index *v1.IndexManifest
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("cache import: %w", err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/")
		switch {
		case hdr.Typeflag != tar.TypeReg:
		case name == "index.json":
			if index, err = v1.ParseIndexManifest(tr); err != nil {
				return fmt.Errorf("cache import: index.json: %w", err)
			}
		case strings.HasPrefix(name, "blobs/sha256/"):
			digest := "sha256:" + strings.TrimPrefix(name, "blobs/sha256/")
			if _, err := c.BlobPath(digest); err != nil {
				return fmt.Errorf("cache import: %s: %w", name, err)
			}
			if err := c.putBlob(ctx, digest, hdr.Size, tr); err != nil {
				return fmt.Errorf("cache import: %s: %w", name, err)
			}
		}
	}
	if index == nil {
		return fmt.Errorf("cache import: no index.json: not an OCI image layout")
	}
	for _, d := range index.Manifests {
		if err := c.reachable(d, map[string]int64{}, needAll); err != nil {
			return fmt.Errorf("cache import: %s: %w", d.Digest, err)
		}
	}
	for _, d := range index.Manifests {
		key := d.Annotations[KeyAnnotation]
		if key == "" {
			key = d.Annotations[refNameAnnotation]
		}
		if key == "" {
			key = d.Digest.String()
		}
		desc := v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest, Platform: d.Platform}
		if err := c.record(key, desc); err != nil {
			return fmt.Errorf("cache import: %w", err)
		}
	}
	return nil
}
