package prune

import (
	"bytes"
	"slices"

	"github.com/opencontainers/go-digest"
)

// References is what the image API still names: the mark half of the collector.
type References struct {
	// Blobs are the digests any Image uses, as manifest, config, layer or child. A blob is
	// global: whichever repository it was pushed to, it is kept while any Image names it.
	Blobs *DigestSet
	// repositories maps "<namespace>/<name>" to what its image stream references.
	repositories map[string]*RepositoryReferences
	// stored are the manifests that Resolve read from storage and the blobs they use: kept
	// like the blobs an Image names, since a list that stays reaches them (or an Image that
	// does not name its config uses them).
	stored *DigestSet
	// names are the digests whose keys are hashes, for Resolve to read them.
	names map[digestKey]digest.Digest
	// incomplete are the Images that do not name their config, whichever stream names them:
	// Resolve reads their manifests so that their config blobs stay with them.
	incomplete []digestKey
}

// RepositoryReferences is what one image stream references.
type RepositoryReferences struct {
	// Manifests are the manifests named by its tag histories, and the children of those that
	// are manifest lists or OCI indexes.
	Manifests *DigestSet
	// Blobs are the layers and configs of those manifests (and the manifests themselves).
	Blobs *DigestSet
	// Incomplete says Blobs may lack blobs those manifests use: a child of a list has no Image
	// object (removed by hand, or by a pruner that did not follow lists), or an Image does
	// not name its config. References.Resolve reads those manifests from storage; until it
	// has, the repository fails closed (every link and tag in it stays).
	Incomplete bool
	// Unknown, when not empty, says why what the stream uses stays unknown after Resolve (a
	// manifest it reaches is not in storage, or does not parse): the repository fails closed.
	Unknown string
	// unresolved are the manifests the API cannot describe (see Incomplete).
	unresolved []digestKey
	// fromStorage are the manifests Resolve read from storage for this stream: a list that
	// stays reaches them, so their links stay whether or not an Image names them.
	fromStorage *DigestSet
}

// failsClosed tells whether what the stream uses is not fully known, so that every link and
// tag of its repository stays.
func (rr *RepositoryReferences) failsClosed() bool {
	return rr != nil && (rr.Incomplete || rr.Unknown != "")
}

// unknownWhy says why a repository fails closed, for reasons and explanations.
func (rr *RepositoryReferences) unknownWhy() string {
	if rr.Unknown != "" {
		return rr.Unknown
	}
	return "a manifest it reaches has no Image, or its Image does not name its config, and storage was not read"
}

// Repository returns what the image stream of repo references, or nil when repo has no image
// stream.
func (r *References) Repository(repo string) *RepositoryReferences {
	return r.repositories[repo]
}

// streamKeepsManifest is the rule that keeps a manifest link: the stream rr (nil when the
// repository has none) names manifest d, and some Image still names it.
func (r *References) streamKeepsManifest(rr *RepositoryReferences, d digest.Digest) bool {
	return rr != nil && rr.Manifests.Has(d) && (r.Blobs.Has(d) || rr.fromStorage.Has(d))
}

// streamKeepsLayer is the rule that keeps a layer link: an image of the stream rr uses blob d,
// and some Image still names it.
func (r *References) streamKeepsLayer(rr *RepositoryReferences, d digest.Digest) bool {
	return rr != nil && rr.Blobs.Has(d) && r.named(d)
}

// named tells whether some Image names d, or a manifest read from storage for a list that
// stays uses it.
func (r *References) named(d digest.Digest) bool {
	return r.Blobs.Has(d) || r.stored.Has(d)
}

// FailingClosed lists, sorted, the repositories whose stream uses what neither the image API
// nor storage can say: every link and tag in them stays.
func (r *References) FailingClosed() []string {
	var out []string
	for repo, rr := range r.repositories {
		if rr.failsClosed() {
			out = append(out, repo)
		}
	}
	slices.Sort(out)
	return out
}

// RepositoryCount is the number of image streams seen.
func (r *References) RepositoryCount() int { return len(r.repositories) }

// ReferenceBuilder collects Images and ImageStreams, one at a time as they are listed, and
// joins them into References. It keeps only fixed-size digest keys, never the objects.
type ReferenceBuilder struct {
	blobs  *DigestSet
	images map[digestKey]imageBlobs
	// streams maps a repository to the manifests its tag histories name.
	streams map[string][]digestKey
	// names keeps the digests whose key is a hash (not sha256, rare), for reading them back.
	names map[digestKey]digest.Digest
}

// imageBlobs is what the join needs of an image: the blobs its manifest uses (config and
// layers), then its children (of a manifest list or index), in one slice.
type imageBlobs struct {
	keys       []digestKey
	children   int // the last children keys are children
	incomplete bool
}

// NewReferenceBuilder returns an empty builder.
func NewReferenceBuilder() *ReferenceBuilder {
	return &ReferenceBuilder{
		blobs:   NewDigestSet(),
		images:  make(map[digestKey]imageBlobs),
		streams: make(map[string][]digestKey),
		names:   make(map[digestKey]digest.Digest),
	}
}

// AddImage records an Image.
func (b *ReferenceBuilder) AddImage(img Image) {
	n := len(img.Layers) + len(img.Children)
	if img.Config != "" {
		n++
	}
	ib := imageBlobs{keys: make([]digestKey, 0, n), children: len(img.Children), incomplete: img.Incomplete}
	add := func(d digest.Digest) {
		k := b.key(d)
		b.blobs.addKey(k)
		ib.keys = append(ib.keys, k)
	}
	b.blobs.addKey(b.key(img.Manifest))
	if img.Config != "" {
		add(img.Config)
	}
	for _, l := range img.Layers {
		add(l)
	}
	for _, c := range img.Children {
		add(c)
	}
	b.images[keyOf(img.Manifest)] = ib
}

// key is keyOf(d), remembering d when the key cannot be turned back into it.
func (b *ReferenceBuilder) key(d digest.Digest) digestKey {
	k := keyOf(d)
	if !isRawKey(d) {
		b.names[k] = d
	}
	return k
}

// AddStream records an ImageStream.
func (b *ReferenceBuilder) AddStream(s Stream) {
	keys := b.streams[s.Repository]
	for _, m := range s.Manifests {
		keys = append(keys, keyOf(m))
	}
	b.streams[s.Repository] = keys
}

// Build joins the streams with the images. It is called once, after the last Add.
func (b *ReferenceBuilder) Build() *References {
	b.blobs.freeze()
	refs := &References{
		Blobs:        b.blobs,
		repositories: make(map[string]*RepositoryReferences, len(b.streams)),
		names:        b.names,
	}
	for k, img := range b.images {
		if img.incomplete {
			refs.incomplete = append(refs.incomplete, k)
		}
	}
	for repo, manifests := range b.streams {
		refs.repositories[repo] = b.repositoryReferences(manifests)
	}
	// The builder is spent: let its per-image lists go before the inventory is taken.
	b.images, b.streams = nil, nil
	return refs
}

// repositoryReferences marks the manifests of a stream, their blobs and, for lists, their
// children (walked without recursion, so that a malformed cycle of indexes cannot loop).
func (b *ReferenceBuilder) repositoryReferences(roots []digestKey) *RepositoryReferences {
	var manifests, blobs, unresolved []digestKey
	walkOnce(roots, func(k digestKey) []digestKey {
		manifests = append(manifests, k)
		blobs = append(blobs, k)
		img, ok := b.images[k]
		if !ok {
			// A manifest without an Image is garbage by rule, unless an Image names it (a list
			// that stays names it as a child): then it stays, and what it uses (children
			// included) is read from storage.
			if b.blobs.hasKey(k) {
				unresolved = append(unresolved, k)
			}
			return nil
		}
		blobs = append(blobs, img.keys...)
		if img.incomplete {
			unresolved = append(unresolved, k)
		}
		return img.keys[len(img.keys)-img.children:]
	})
	slices.SortFunc(unresolved, func(a, b digestKey) int { return bytes.Compare(a[:], b[:]) })
	unresolved = slices.Clip(slices.Compact(unresolved))
	return &RepositoryReferences{
		Manifests:  frozenSet(manifests),
		Blobs:      frozenSet(blobs),
		Incomplete: len(unresolved) > 0,
		unresolved: unresolved,
	}
}

// walkOnce visits each key reachable from roots once, depth first and without recursion, so
// that a malformed cycle of indexes cannot loop; visit returns the keys to go on with.
func walkOnce(roots []digestKey, visit func(digestKey) []digestKey) {
	seen := make(map[digestKey]bool, len(roots))
	pending := append([]digestKey(nil), roots...)
	for len(pending) > 0 {
		k := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if seen[k] {
			continue
		}
		seen[k] = true
		pending = append(pending, visit(k)...)
	}
}
