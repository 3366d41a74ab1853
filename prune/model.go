package prune

import (
	"sort"
	"strings"
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
	// Incomplete says the Image does not name every blob its manifest uses (a schema 2 or
	// OCI manifest without a config digest in its metadata).
	Incomplete bool
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
	// RepositoriesMissing says storage has no repositories/ directory at all (on object
	// storage: no object below it). Beside blobs it most often means a wrong rootdirectory
	// (or bucket): every blob would then look unlinked, so the wrong-cluster interlock weighs it.
	RepositoriesMissing bool
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
	// Nested says other repositories live below this one's directory (a/b and a/b/c), so
	// deleting the repository must not delete its whole directory.
	Nested bool
	// InvalidName says the name breaks distribution's grammar (ns/BadName): no push made it
	// and no image stream can hold it, so it is decided like a repository without a stream.
	InvalidName bool
}

// Link is a manifest revision link or a layer link.
type Link struct {
	Digest  digest.Digest
	ModTime time.Time
}

// Tag is a tag in storage: the manifest its current link names, and its index of manifests.
//
// Reading the current link costs a request per tag (a GET on object storage), so the
// inventory leaves it unread (TagUnread); Decide asks for the tags it cannot decide from the
// index alone, and only those are read.
type Tag struct {
	Name string
	// State is what is known of the current link; storage sets it.
	State TagState
	// Current is the manifest the current link names, once read; empty when the link's
	// content is not a digest, which leaves the tag alone.
	Current digest.Digest
	Index   []digest.Digest
	ModTime time.Time // newest modification time of its links
	// CurrentModTime and IndexModTimes (one per Index entry) are the modification times of
	// the current link and of the index entries, for likelyCurrent.
	CurrentModTime time.Time
	IndexModTimes  []time.Time
}

// TagState is what is known of a tag's current link.
type TagState uint8

const (
	// TagUnread: the walk listed the current link and did not read it; the index may tell
	// what it names.
	TagUnread TagState = iota
	// TagUnlisted: the walk listed the tag without a current link (or without its time): a
	// read settles whether it has one.
	TagUnlisted
	// TagRead: the current link was read into Current.
	TagRead
	// TagNoCurrentLink: a read found no current link. Distribution serves no such tag; it is
	// what an interrupted deletion or tagging leaves.
	TagNoCurrentLink
)

// read tells whether the current link was read (or found missing by a read).
func (t *Tag) read() bool { return t.State >= TagRead }

// likelyCurrent names the manifest the current link points at without reading it, when the
// times tell: distribution tags a manifest by writing its index entry, then the current
// link, so the current manifest is the newest index entry, written just before the current
// link. It answers only when exactly one entry is the newest, and it is no newer than the
// current link and at most a minute older; an interrupted tagging (index entry written,
// current link not) fails that test, since the current link is then older.
func (t *Tag) likelyCurrent() (digest.Digest, bool) {
	if len(t.IndexModTimes) != len(t.Index) || len(t.Index) == 0 || t.CurrentModTime.IsZero() {
		return "", false
	}
	newest, unique := 0, true
	for i := 1; i < len(t.Index); i++ {
		switch c := t.IndexModTimes[i].Compare(t.IndexModTimes[newest]); {
		case c > 0:
			newest, unique = i, true
		case c == 0:
			unique = false
		}
	}
	at := t.IndexModTimes[newest]
	if !unique || at.After(t.CurrentModTime) || t.CurrentModTime.Sub(at) > time.Minute {
		return "", false
	}
	return t.Index[newest], true
}

// TagRef names a tag in a repository.
type TagRef struct {
	Repository, Tag string
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

// Tag finds a tag of the inventory; repositories are sorted by name, tags by name.
func (inv *Inventory) Tag(ref TagRef) *Tag {
	i, ok := sort.Find(
		len(inv.Repositories),
		func(i int) int { return strings.Compare(ref.Repository, inv.Repositories[i].Name) },
	)
	if !ok {
		return nil
	}
	tags := inv.Repositories[i].Tags
	j, ok := sort.Find(len(tags), func(j int) int { return strings.Compare(ref.Tag, tags[j].Name) })
	if !ok {
		return nil
	}
	return &tags[j]
}
