package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/cachefile"
)

// Problem is a bad blob Verify found.
type Problem struct {
	Path    string   // the blob's file
	Err     error    // what is wrong with it
	UsedBy  []string // keys of the images and indexes that need it
	Removed bool     // repair removed the file
}

// VerifyReport is what Verify found and, with repair, did.
type VerifyReport struct {
	Blobs    int // blobs hashed
	Problems []Problem
	Forgot   []string // keys forgotten because they need a bad or missing blob
}

// Problems that are not the blob's own content: repair forgets the keys
// that need the blob but leaves the file (there is none, or it is good).
var (
	errMissing     = errors.New("missing")
	errNotManifest = errors.New("named as a manifest or index but not one")
)

// Verify hashes every blob of the cache against its digest and walks every
// image and index for blobs that are corrupt or missing. Without repair it
// changes nothing; with repair it removes the bad blobs and forgets the
// keys that need one, so that the next build fetches or rebuilds them.
func (c *Cache) Verify(ctx context.Context, repair bool) (*VerifyReport, error) {
	// Blobs only ever appear by renaming verified content into place, so
	// they are hashed without the lock that would stall other builds.
	n, bad, err := cachefile.VerifyDir(ctx, filepath.Join(c.dir, "blobs", "sha256"), nil)
	if err != nil {
		return nil, fmt.Errorf("cache verify: %w", err)
	}
	rep := &VerifyReport{Blobs: n}
	problems := map[string]*Problem{} // by path
	for _, b := range bad {
		problems[b.Path] = &Problem{Path: b.Path, Err: b.Err}
	}
	how := unix.LOCK_SH
	if repair {
		how = unix.LOCK_EX
	}
	unlock, err := c.lock(how)
	if err != nil {
		return nil, err
	}
	defer unlock()
	im, err := c.readIndex()
	if err != nil {
		return nil, fmt.Errorf("cache verify: %w", err)
	}
	for _, d := range im.Manifests {
		key, ok := d.Annotations[KeyAnnotation]
		if !ok {
			continue
		}
		if err := c.needs(d, key, problems, map[string]bool{}); err != nil {
			return nil, fmt.Errorf("cache verify: %s: %w", key, err)
		}
	}
	for _, p := range problems {
		rep.Problems = append(rep.Problems, *p)
	}
	slices.SortFunc(rep.Problems, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
	if !repair {
		return rep, nil
	}
	forget := map[string]bool{}
	for i, p := range rep.Problems {
		if !errors.Is(p.Err, errMissing) && !errors.Is(p.Err, errNotManifest) {
			c.files.Forget(p.Path)
			if err := os.Remove(p.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return rep, fmt.Errorf("cache verify: %w", err)
			}
			rep.Problems[i].Removed = true
		}
		for _, k := range p.UsedBy {
			forget[k] = true
		}
	}
	if len(forget) == 0 {
		return rep, nil
	}
	im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool { return forget[d.Annotations[KeyAnnotation]] })
	if err := c.writeIndexFile(im); err != nil {
		return rep, fmt.Errorf("cache verify: %w", err)
	}
	for k := range forget {
		rep.Forgot = append(rep.Forgot, k)
	}
	slices.Sort(rep.Forgot)
	return rep, nil
}

// needs records key as a user of every bad or missing blob d reaches.
// Blobs were hashed already, so manifests are read without verifying
// them again.
func (c *Cache) needs(d v1.Descriptor, key string, problems map[string]*Problem, seen map[string]bool) error {
	if seen[d.Digest.String()] {
		return nil
	}
	seen[d.Digest.String()] = true
	p, err := c.BlobPath(d.Digest.String())
	if err != nil {
		return err
	}
	use := func(err error) {
		pr := problems[p]
		if pr == nil {
			pr = &Problem{Path: p, Err: err}
			problems[p] = pr
		}
		if !slices.Contains(pr.UsedBy, key) {
			pr.UsedBy = append(pr.UsedBy, key)
		}
	}
	if problems[p] != nil {
		use(nil)
		return nil
	}
	if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			use(errMissing)
		}
		return nil
	}
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		use(errMissing)
		return nil
	}
	if err != nil {
		return err
	}
	var kids []v1.Descriptor
	if d.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			use(fmt.Errorf("%w: %v", errNotManifest, err))
			return nil
		}
		kids = im.Manifests
	} else {
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			use(fmt.Errorf("%w: %v", errNotManifest, err))
			return nil
		}
		kids = append([]v1.Descriptor{m.Config}, m.Layers...)
	}
	for _, k := range kids {
		if err := c.needs(k, key, problems, seen); err != nil {
			return err
		}
	}
	return nil
}
