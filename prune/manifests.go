package prune

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// ManifestReader reads a manifest from storage and says what it uses, in the shape of an Image
// (Config, Layers, Children; Incomplete is never set). The storage package implements it.
//
// It is asked only where the image API cannot say what a manifest uses: a manifest reached
// through a list that stays but has no Image, at any depth, and an Image that does not name
// its config.
type ManifestReader interface {
	ReadManifest(ctx context.Context, d digest.Digest) (Image, error)
}

// ErrManifestNotStored says storage has no blob for the manifest.
var ErrManifestNotStored = errors.New("manifest not in storage")

// ErrManifestUnreadable says the stored blob is not a manifest this pruner understands (or its
// content does not match its digest).
var ErrManifestUnreadable = errors.New("stored manifest cannot be read")

// digest turns a key back into the sha256 digest it was made from. The key of another
// algorithm is a hash: References.names keeps those digests (were one missing, the digest made
// here names nothing in storage, a read reports it as not stored, and the repository fails
// closed, which is safe).
func (k digestKey) digest() digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(k[:]))
}

// readResult is one manifest read from storage: what it uses, or why storage cannot say.
type readResult struct {
	keys     []digestKey // config and layers, then children
	children []digestKey
	why      string // empty when read
}

// Resolve completes the references of every repository whose stream reaches a manifest that
// the image API cannot describe (RepositoryReferences.Incomplete): it reads those manifests
// from storage, and every manifest below them, and adds what they use to the repository's
// references, as if an Image said it. It also reads the manifest of every Image that does not
// name its config, so that the config stays while the Image does. A manifest storage does not
// hold or cannot parse leaves its repository failing closed: every link and tag in it stays
// for this run.
//
// Any other error (storage unreachable) is returned: the run must then delete nothing.
// Without a reader, every such repository fails closed. workers bounds the reads under way.
func (r *References) Resolve(ctx context.Context, reader ManifestReader, workers int) error {
	pending := append([]digestKey(nil), r.incomplete...)
	for _, rr := range r.repositories {
		pending = append(pending, rr.unresolved...)
	}
	if len(pending) == 0 {
		return nil
	}
	if workers < 1 {
		workers = 1
	}
	read := make(map[digestKey]*readResult)
	// Breadth first: each level of lists is read in parallel, then its children are the next.
	for len(pending) > 0 {
		var level []digestKey
		for _, k := range pending {
			if _, ok := read[k]; !ok {
				read[k] = nil
				level = append(level, k)
			}
		}
		results := make([]*readResult, len(level))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(workers)
		for i, k := range level {
			g.Go(func() error {
				d, ok := r.names[k]
				if !ok {
					d = k.digest()
				}
				res, err := readManifest(gctx, reader, d)
				results[i] = res
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		pending = pending[:0]
		for i, k := range level {
			read[k] = results[i]
			pending = append(pending, results[i].children...)
		}
	}

	stored := NewDigestSet()
	for _, k := range r.incomplete {
		if res := read[k]; res.why == "" {
			for _, b := range res.keys {
				stored.addKey(b)
			}
		}
	}
	for repo, rr := range r.repositories {
		if len(rr.unresolved) == 0 {
			continue
		}
		r.repositories[repo] = rr.resolved(read, stored)
	}
	stored.freeze()
	r.stored = stored
	return nil
}

// readManifest reads one manifest; a manifest that storage lacks or that does not parse is a
// result (its repository fails closed), any other error fails the run.
func readManifest(ctx context.Context, reader ManifestReader, d digest.Digest) (*readResult, error) {
	if reader == nil {
		return &readResult{why: fmt.Sprintf("manifest %s has no Image and storage was not read", d)}, nil
	}
	img, err := reader.ReadManifest(ctx, d)
	switch {
	case errors.Is(err, ErrManifestNotStored):
		return &readResult{why: fmt.Sprintf("manifest %s is not in storage", d)}, nil
	case errors.Is(err, ErrManifestUnreadable):
		return &readResult{why: fmt.Sprintf("manifest %s cannot be read: %v", d, err)}, nil
	case err != nil:
		return nil, fmt.Errorf("reading manifest %s: %w", d, err)
	}
	res := &readResult{}
	if img.Config != "" {
		res.keys = append(res.keys, keyOf(img.Config))
	}
	for _, l := range img.Layers {
		res.keys = append(res.keys, keyOf(l))
	}
	for _, c := range img.Children {
		res.keys = append(res.keys, keyOf(c))
		res.children = append(res.children, keyOf(c))
	}
	return res, nil
}

// resolved returns rr completed with the manifests read from storage below its unresolved
// ones, adding what they use to stored.
func (rr *RepositoryReferences) resolved(read map[digestKey]*readResult, stored *DigestSet) *RepositoryReferences {
	out := &RepositoryReferences{Manifests: rr.Manifests, Blobs: rr.Blobs}
	manifests := append([]digestKey(nil), rr.Manifests.frozen...)
	blobs := append([]digestKey(nil), rr.Blobs.frozen...)
	var fromStorage []digestKey
	walkOnce(rr.unresolved, func(k digestKey) []digestKey {
		res := read[k]
		if res.why != "" {
			if out.Unknown == "" {
				out.Unknown = res.why
			}
			return nil
		}
		manifests = append(manifests, k)
		fromStorage = append(fromStorage, k)
		blobs = append(blobs, k)
		blobs = append(blobs, res.keys...)
		stored.addKey(k)
		for _, b := range res.keys {
			stored.addKey(b)
		}
		return res.children
	})
	out.Manifests, out.Blobs, out.fromStorage = frozenSet(manifests), frozenSet(blobs), frozenSet(fromStorage)
	return out
}
