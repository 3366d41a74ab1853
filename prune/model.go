package prune

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// Image is what the pruner keeps of an Image object: its digests and nothing else.
type Image struct {
	// Manifest is the Image's name, the digest of its manifest.
	Manifest digest.Digest
	// Config is the config blob of a schema 2 or OCI manifest, if any.
	Config digest.Digest
	// Layers are the layer blobs.
	Layers []digest.Digest
	// Children are the manifests a manifest list or OCI index names.
	Children []digest.Digest
}

// Stream is what the pruner keeps of an ImageStream: the repository it maps to and the
// manifests named anywhere in its tag histories.
type Stream struct {
	// Repository is "<namespace>/<name>".
	Repository string
	// Manifests are the images named by any item of any tag's history.
	Manifests []digest.Digest
}

// Inventory is what storage holds.
type Inventory struct {
	Blobs        []Blob
	Repositories []Repository
}

// Blob is a stored blob.
type Blob struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Repository is a stored repository and everything in it.
type Repository struct {
	Name      string
	Manifests []Link // _manifests/revisions
	Layers    []Link // _layers
	Tags      []Tag  // _manifests/tags
	Uploads   []Upload
	// HasNested says other repositories live below this one's directory (a/b and a/b/c), so
	// deleting the repository must not delete its whole directory.
	HasNested bool
}

// Link is a manifest revision link or a layer link.
type Link struct {
	Digest  digest.Digest
	ModTime time.Time
}

// Tag is a tag in storage: the manifest its current link names, and its index of manifests.
type Tag struct {
	Name    string
	Current digest.Digest // empty when the current link is missing or unreadable
	Index   []digest.Digest
	ModTime time.Time // newest modification time of its links
}

// Upload is an unfinished upload.
type Upload struct {
	ID      string
	Size    int64
	ModTime time.Time // newest modification time of its files
}

// newest returns the latest of the modification times in a repository.
func (r *Repository) newest() time.Time {
	var t time.Time
	bump := func(m time.Time) {
		if m.After(t) {
			t = m
		}
	}
	for _, l := range r.Manifests {
		bump(l.ModTime)
	}
	for _, l := range r.Layers {
		bump(l.ModTime)
	}
	for _, tag := range r.Tags {
		bump(tag.ModTime)
	}
	for _, u := range r.Uploads {
		bump(u.ModTime)
	}
	return t
}
