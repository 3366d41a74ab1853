package prune

import "github.com/opencontainers/go-digest"

// References is what the image API still names: the mark half of the collector.
type References struct {
	// Blobs are the digests any Image uses, as manifest, config, layer or child. A blob is
	// global: whichever repository it was pushed to, it is kept while any Image names it.
	Blobs *DigestSet
	// repositories maps "<namespace>/<name>" to what its image stream references.
	repositories map[string]*RepositoryReferences
}

// RepositoryReferences is what one image stream references.
type RepositoryReferences struct {
	// Manifests are the manifests named by its tag histories, and the children of those that
	// are manifest lists or OCI indexes.
	Manifests *DigestSet
	// Blobs are the layers and configs of those manifests (and the manifests themselves).
	Blobs *DigestSet
}

// Repository returns what the image stream of repo references, or nil when repo has no image
// stream.
func (r *References) Repository(repo string) *RepositoryReferences {
	return r.repositories[repo]
}

// RepositoryCount is the number of image streams seen.
func (r *References) RepositoryCount() int { return len(r.repositories) }

// ReferenceBuilder collects Images and ImageStreams, one at a time as they are listed, and
// joins them into References.
type ReferenceBuilder struct {
	blobs   *DigestSet
	images  map[digest.Digest]imageBlobs
	streams []Stream
}

// imageBlobs is what the join needs of an image: the blobs its manifest uses, and its children.
type imageBlobs struct {
	blobs    []digest.Digest
	children []digest.Digest
}

// NewReferenceBuilder returns an empty builder.
func NewReferenceBuilder() *ReferenceBuilder {
	return &ReferenceBuilder{blobs: NewDigestSet(), images: make(map[digest.Digest]imageBlobs)}
}

// AddImage records an Image.
func (b *ReferenceBuilder) AddImage(img Image) {
	b.blobs.Add(img.Manifest)
	b.blobs.Add(img.Config)
	ib := imageBlobs{children: img.Children}
	if img.Config != "" {
		ib.blobs = append(ib.blobs, img.Config)
	}
	for _, l := range img.Layers {
		b.blobs.Add(l)
		ib.blobs = append(ib.blobs, l)
	}
	for _, c := range img.Children {
		b.blobs.Add(c)
	}
	b.images[img.Manifest] = ib
}

// AddStream records an ImageStream.
func (b *ReferenceBuilder) AddStream(s Stream) {
	b.streams = append(b.streams, s)
}

// Build joins the streams with the images.
func (b *ReferenceBuilder) Build() *References {
	refs := &References{Blobs: b.blobs, repositories: make(map[string]*RepositoryReferences, len(b.streams))}
	for _, s := range b.streams {
		rr := refs.repositories[s.Repository]
		if rr == nil {
			rr = &RepositoryReferences{Manifests: NewDigestSet(), Blobs: NewDigestSet()}
			refs.repositories[s.Repository] = rr
		}
		for _, m := range s.Manifests {
			b.addManifest(rr, m)
		}
	}
	return refs
}

// addManifest marks a manifest of a stream, its blobs and, for lists, its children (walked
// without recursion so that a malformed cycle of indexes cannot loop).
func (b *ReferenceBuilder) addManifest(rr *RepositoryReferences, m digest.Digest) {
	pending := []digest.Digest{m}
	for len(pending) > 0 {
		d := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if rr.Manifests.Has(d) {
			continue
		}
		rr.Manifests.Add(d)
		rr.Blobs.Add(d)
		img, ok := b.images[d]
		if !ok {
			continue
		}
		for _, blob := range img.blobs {
			rr.Blobs.Add(blob)
		}
		pending = append(pending, img.children...)
	}
}
