package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/cachefile"
)

// KeyAnnotation holds, on each descriptor of the layout's index.json, the
// key the image or index was stored under. The same key is also written
// as org.opencontainers.image.ref.name so other OCI tools can name it.
const KeyAnnotation = "org.keel.cache.key"

const refNameAnnotation = "org.opencontainers.image.ref.name"

// Item is one image or index held in the cache.
type Item struct {
	Key       string
	Digest    string          // of the manifest or index
	MediaType types.MediaType // of the manifest or index
	Size      int64           // bytes of all the blobs it references, itself included
}

// PutImage stores img (its layers, config and manifest, each verified
// against its digest) and records it under key, replacing what key held.
func (c *Cache) PutImage(key string, img v1.Image) error {
	desc, err := c.writeImage(img)
	if err != nil {
		return fmt.Errorf("cache: put %s: %w", key, err)
	}
	if err := c.record(key, desc); err != nil {
		return fmt.Errorf("cache: put %s: %w", key, err)
	}
	return nil
}

// PutIndex stores idx with all the images and indexes it names and
// records it under key.
func (c *Cache) PutIndex(key string, idx v1.ImageIndex) error {
	desc, err := c.writeIndex(idx)
	if err != nil {
		return fmt.Errorf("cache: put %s: %w", key, err)
	}
	if err := c.record(key, desc); err != nil {
		return fmt.Errorf("cache: put %s: %w", key, err)
	}
	return nil
}

func (c *Cache) writeImage(img v1.Image) (v1.Descriptor, error) {
	ctx := context.Background()
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, l := range layers {
		d, derr := l.Digest()
		size, serr := l.Size()
		if derr == nil && serr == nil {
			if p, err := c.BlobPath(d.String()); err == nil {
				ok, err := c.held(p, d.String(), size)
				if err != nil {
					return v1.Descriptor{}, fmt.Errorf("layer %s: %w", d, err)
				}
				if ok {
					continue
				}
			}
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("layer %s: %w", d, err)
		}
		want, wantSize := "", int64(-1)
		if derr == nil && serr == nil {
			want, wantSize = d.String(), size
		}
		_, err = c.putBlobDigest(ctx, want, wantSize, rc)
		rc.Close()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("layer %s: %w", d, err)
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Descriptor{}, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := c.putBytes(cfgName.String(), cfg); err != nil {
		return v1.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	desc, err := c.putManifest(img)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if cf, err := img.ConfigFile(); err == nil && cf.Architecture != "" {
		desc.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	}
	return desc, nil
}

func (c *Cache) writeIndex(idx v1.ImageIndex) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return v1.Descriptor{}, err
			}
			if _, err := c.writeImage(img); err != nil {
				return v1.Descriptor{}, fmt.Errorf("image %s: %w", d.Digest, err)
			}
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return v1.Descriptor{}, err
			}
			if _, err := c.writeIndex(child); err != nil {
				return v1.Descriptor{}, fmt.Errorf("index %s: %w", d.Digest, err)
			}
		}
	}
	return c.putManifest(idx)
}

type manifester interface {
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}

func (c *Cache) putManifest(m manifester) (v1.Descriptor, error) {
	raw, err := m.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := m.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	sum := sha256.Sum256(raw)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := c.putBytes(d.String(), raw); err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	return v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: d}, nil
}

func (c *Cache) putBytes(digest string, b []byte) error {
	p, err := c.BlobPath(digest)
	if err != nil {
		return err
	}
	if ok, err := c.held(p, digest, int64(len(b))); err != nil || ok {
		return err
	}
	return c.putBlob(context.Background(), digest, int64(len(b)), bytes.NewReader(b))
}

// readIndex reads the layout's index.json; the caller holds the lock.
func (c *Cache) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(string(c.layout), "index.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	im, err := v1.ParseIndexManifest(f)
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if im.SchemaVersion != 2 {
		return nil, fmt.Errorf("index.json: schema version %d, want 2", im.SchemaVersion)
	}
	return im, nil
}

// writeIndexFile replaces index.json atomically; the caller holds the
// exclusive lock.
func (c *Cache) writeIndexFile(im *v1.IndexManifest) error {
	b, err := json.MarshalIndent(im, "", "   ")
	if err != nil {
		return err
	}
	tmp, err := cachefile.CreateTemp(filepath.Join(c.dir, "tmp"), "index-*")
	if err != nil {
		return err
	}
	defer tmp.Close() // after the rename: its lock tells Clean it is in use
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(string(c.layout), "index.json"))
}

// record points key at desc in index.json, replacing what key held (the
// layout package's ReplaceImage semantics, without re-reading layers and
// with an atomic index write).
func (c *Cache) record(key string, desc v1.Descriptor) error {
	unlock, err := c.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	im, err := c.readIndex()
	if err != nil {
		return err
	}
	desc.Annotations = map[string]string{KeyAnnotation: key, refNameAnnotation: key}
	im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool { return d.Annotations[KeyAnnotation] == key })
	im.Manifests = append(im.Manifests, desc)
	return c.writeIndexFile(im)
}

// lookup finds key's descriptor.
func (c *Cache) lookup(key string) (v1.Descriptor, error) {
	unlock, err := c.lock(unix.LOCK_SH)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	im, err := c.readIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		if d.Annotations[KeyAnnotation] == key {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%s: %w", key, ErrNotFound)
}

// Image returns the image stored under key (ErrNotFound if none). Every
// blob of it (manifest, config, layers) is hashed whole before Image
// returns, so a blob damaged on disk is never read: it is removed, with a
// warning, and Image fails with a *CorruptError, which is ErrNotFound to
// the caller, who fetches or rebuilds the image as for any miss.
func (c *Cache) Image(key string) (v1.Image, error) {
	d, err := c.lookup(key)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if !d.MediaType.IsImage() {
		return nil, fmt.Errorf("cache: %s holds %s, not an image", key, d.MediaType)
	}
	return c.image(d)
}

// Index returns the image index stored under key (ErrNotFound if none),
// with every blob it reaches verified as Image does.
func (c *Cache) Index(key string) (v1.ImageIndex, error) {
	d, err := c.lookup(key)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if !d.MediaType.IsIndex() {
		return nil, fmt.Errorf("cache: %s holds %s, not an index", key, d.MediaType)
	}
	return c.index(d)
}

// readBlob reads a whole blob, verified.
func (c *Cache) readBlob(desc v1.Descriptor) ([]byte, error) {
	rc, err := c.openBlob(desc.Digest, desc.Size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// openBlob opens a blob after hashing it whole (see cachefile.Verifier).
// A missing blob is ErrNotFound; a corrupt one is removed and gives a
// *CorruptError.
func (c *Cache) openBlob(d v1.Hash, size int64) (io.ReadCloser, error) {
	p, err := c.BlobPath(d.String())
	if err != nil {
		return nil, err
	}
	f, err := c.files.Open(p, d.String(), size)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("cache: blob %s: %w", d, ErrNotFound)
	case cachefile.IsMismatch(err):
		return nil, fmt.Errorf("cache: %w", c.discard(p, d.String(), err))
	default:
		return nil, fmt.Errorf("cache: %w", err)
	}
}

func (c *Cache) image(d v1.Descriptor) (v1.Image, error) {
	if err := c.reachable(d, map[string]int64{}, verifyAll); err != nil {
		return nil, err
	}
	raw, err := c.readBlob(d)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("cache: manifest %s: %w", d.Digest, err)
	}
	mt := d.MediaType
	if m.MediaType != "" {
		mt = m.MediaType
	}
	return partial.CompressedToImage(&imageCore{c: c, raw: raw, manifest: m, mediaType: mt})
}

// imageCore is what partial needs to make a whole v1.Image of a stored
// manifest; every blob goes through openBlob's verification (hashed
// already by image, so opened without hashing again).
type imageCore struct {
	c         *Cache
	raw       []byte
	manifest  *v1.Manifest
	mediaType types.MediaType
}

func (i *imageCore) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *imageCore) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *imageCore) RawConfigFile() ([]byte, error)      { return i.c.readBlob(i.manifest.Config) }

func (i *imageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.manifest.Config.Digest {
		return &blobLayer{c: i.c, desc: i.manifest.Config}, nil
	}
	for _, l := range i.manifest.Layers {
		if l.Digest == h {
			return &blobLayer{c: i.c, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("cache: layer %s is not in the image", h)
}

type blobLayer struct {
	c    *Cache
	desc v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *blobLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return l.c.openBlob(l.desc.Digest, l.desc.Size)
}
func (l *blobLayer) Descriptor() (*v1.Descriptor, error) { d := l.desc; return &d, nil }

func (c *Cache) index(d v1.Descriptor) (v1.ImageIndex, error) {
	if err := c.reachable(d, map[string]int64{}, verifyAll); err != nil {
		return nil, err
	}
	raw, err := c.readBlob(d)
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("cache: index %s: %w", d.Digest, err)
	}
	mt := d.MediaType
	if im.MediaType != "" {
		mt = im.MediaType
	}
	return &storedIndex{c: c, desc: d, raw: raw, manifest: im, mediaType: mt}, nil
}

// storedIndex is an image index read from the cache, with every blob it
// reaches verified.
type storedIndex struct {
	c         *Cache
	desc      v1.Descriptor
	raw       []byte
	manifest  *v1.IndexManifest
	mediaType types.MediaType
}

func (x *storedIndex) MediaType() (types.MediaType, error)       { return x.mediaType, nil }
func (x *storedIndex) Digest() (v1.Hash, error)                  { return x.desc.Digest, nil }
func (x *storedIndex) Size() (int64, error)                      { return int64(len(x.raw)), nil }
func (x *storedIndex) RawManifest() ([]byte, error)              { return x.raw, nil }
func (x *storedIndex) IndexManifest() (*v1.IndexManifest, error) { return x.manifest.DeepCopy(), nil }

func (x *storedIndex) child(h v1.Hash) (v1.Descriptor, error) {
	for _, d := range x.manifest.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("cache: %s is not in index %s: %w", h, x.desc.Digest, ErrNotFound)
}

func (x *storedIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return x.c.image(d)
}

func (x *storedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return x.c.index(d)
}

// children lists the descriptors a manifest or index blob refers to.
func (c *Cache) children(d v1.Descriptor) ([]v1.Descriptor, error) {
	switch {
	case d.MediaType.IsIndex():
		raw, err := c.readBlob(d)
		if err != nil {
			return nil, err
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		return im.Manifests, nil
	case d.MediaType.IsImage():
		raw, err := c.readBlob(d)
		if err != nil {
			return nil, err
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		return append([]v1.Descriptor{m.Config}, m.Layers...), nil
	}
	return nil, nil
}

// How reachable treats the blobs it walks to. Manifests and indexes are
// always read, so verified.
type walkMode int

const (
	skipMissing walkMode = iota // a missing blob is left out
	needAll                     // a missing blob is an error
	verifyAll                   // every blob is hashed; missing is an error
)

// reachable adds to seen every blob d refers to, d included.
func (c *Cache) reachable(d v1.Descriptor, seen map[string]int64, mode walkMode) error {
	if _, ok := seen[d.Digest.String()]; ok {
		return nil
	}
	seen[d.Digest.String()] = d.Size
	if mode == verifyAll && !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
		rc, err := c.openBlob(d.Digest, d.Size)
		if err != nil {
			return err
		}
		return rc.Close()
	}
	kids, err := c.children(d)
	if err != nil {
		if mode == skipMissing && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	for _, k := range kids {
		if mode == needAll {
			p, err := c.BlobPath(k.Digest.String())
			if err != nil {
				return err
			}
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("cache: blob %s: %w", k.Digest, ErrNotFound)
			}
		}
		if err := c.reachable(k, seen, mode); err != nil {
			return err
		}
	}
	return nil
}

// List returns what the cache holds, sorted by key.
func (c *Cache) List() ([]Item, error) {
	unlock, err := c.lock(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	im, err := c.readIndex()
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var items []Item
	for _, d := range im.Manifests {
		key, ok := d.Annotations[KeyAnnotation]
		if !ok {
			continue
		}
		seen := map[string]int64{}
		if err := c.reachable(d, seen, skipMissing); err != nil {
			return nil, fmt.Errorf("cache: %s: %w", key, err)
		}
		it := Item{Key: key, Digest: d.Digest.String(), MediaType: d.MediaType}
		for _, s := range seen {
			it.Size += s
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.Key, b.Key) })
	return items, nil
}

// Remove forgets key (ErrNotFound if absent); Clean frees its blobs.
func (c *Cache) Remove(key string) error {
	unlock, err := c.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	im, err := c.readIndex()
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	n := len(im.Manifests)
	im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool { return d.Annotations[KeyAnnotation] == key })
	if len(im.Manifests) == n {
		return fmt.Errorf("cache: %s: %w", key, ErrNotFound)
	}
	return c.writeIndexFile(im)
}

// Freed tells what Clean removed.
type Freed struct {
	Blobs, Temps         int
	BlobBytes, TempBytes int64
}

// Clean removes every blob that no image or index of the cache refers to
// (downloads included) and every temporary no live keel process is
// writing (left by a killed one), and reports what it freed.
func (c *Cache) Clean() (Freed, error) {
	var freed Freed
	unlock, err := c.lock(unix.LOCK_EX)
	if err != nil {
		return freed, err
	}
	defer unlock()
	im, err := c.readIndex()
	if err != nil {
		return freed, fmt.Errorf("cache: %w", err)
	}
	keep := map[string]int64{}
	for _, d := range im.Manifests {
		if err := c.reachable(d, keep, skipMissing); err != nil {
			return freed, fmt.Errorf("cache clean: %w", err)
		}
	}
	blobs := filepath.Join(c.dir, "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return freed, fmt.Errorf("cache clean: %w", err)
	}
	for _, e := range entries {
		if _, ok := keep["sha256:"+e.Name()]; ok {
			continue
		}
		var size int64
		if info, err := e.Info(); err == nil {
			size = info.Size()
		}
		if err := os.Remove(filepath.Join(blobs, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return freed, fmt.Errorf("cache clean: %w", err)
		}
		freed.Blobs++
		freed.BlobBytes += size
	}
	if freed.Temps, freed.TempBytes, err = cachefile.RemoveStale(filepath.Join(c.dir, "tmp"), func(string) bool { return true }); err != nil {
		return freed, fmt.Errorf("cache clean: %w", err)
	}
	return freed, nil
}
