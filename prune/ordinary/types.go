// Package ordinary decides what the ordinary prune (`oc adm prune images`, built
// registry-side as `dockerregistry -prune-images`) removes: image stream history items by age,
// tag revisions, usage and size limits; the Images no stream names any more; and the registry
// data those held (layer links, manifest links, blobs). The decisions are pure: they take what
// imageapi read (reduced at once to the types below) and return plans; the Run function applies
// a plan through narrow interfaces, stream updates before the links they held, Images after the
// streams, blobs last.
package ordinary

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

// Image is what the ordinary prune keeps of an Image.
type Image struct {
	// Image holds the digests: manifest (the Image's name), config, layers, children.
	prune.Image
	Created time.Time
	// Managed says the Image carries openshift.io/image.managed=true (pushed to this
	// registry); -all=false prunes only those.
	Managed bool
	// Size is dockerImageMetadata.Size, compared with the namespace's size limit.
	Size int64
}

// Blobs are the blobs an Image counts for the blob deletions, as oc counts them: its layers
// and, for a schema 2 or OCI manifest, its config.
func (img *Image) Blobs() []digest.Digest {
	out := make([]digest.Digest, 0, len(img.Layers)+1)
	out = append(out, img.Layers...)
	if img.Config != "" {
		out = append(out, img.Config)
	}
	return out
}

// Item is one revision of a tag's history (an entry of status.tags[].items), newest first.
type Item struct {
	Image   digest.Digest
	Created time.Time
	// Raw is the position in the API object's items; the stream update removes by it.
	Raw int
}

// Tag is one tag's history.
type Tag struct {
	Name  string
	Items []Item
}

// Stream is an ImageStream's identity, age and tag histories.
type Stream struct {
	Namespace, Name string
	Created         time.Time
	Tags            []Tag
	// ResourceVersion is the version read, for the update that follows the decision.
	ResourceVersion string
}

// Repository is the registry repository of the stream: "<namespace>/<name>".
func (s *Stream) Repository() string { return s.Namespace + "/" + s.Name }

// TagRef names an image stream tag a referrer uses: its revision 0 is kept.
type TagRef struct{ Namespace, Name, Tag string }

func (r TagRef) String() string { return fmt.Sprintf("%s/%s:%s", r.Namespace, r.Name, r.Tag) }

// ImageRef names an image of a stream a referrer uses by digest: every revision of that stream
// naming the digest is kept.
type ImageRef struct {
	Namespace, Name string
	Digest          digest.Digest
}

func (r ImageRef) String() string { return fmt.Sprintf("%s/%s@%s", r.Namespace, r.Name, r.Digest) }

// Referrer is an object whose pod template or build source names an image: "pod/web-1
// namespace=shop", as oc prints it.
type Referrer struct {
	// Resource is the singular lower-case kind: pod, replicationcontroller, deployment,
	// deploymentconfig, replicaset, daemonset, statefulset, job, cronjob, build, buildconfig.
	Resource        string
	Namespace, Name string
}

func (r Referrer) String() string {
	if r.Namespace == "" {
		return r.Resource + "/" + r.Name
	}
	return fmt.Sprintf("%s/%s namespace=%s", r.Resource, r.Name, r.Namespace)
}

// SampleSize is how many referrers of one tag or image are kept, for the explanations; the
// count is always whole.
const SampleSize = 3

// Users are the referrers of one tag or image: a count and the first few.
type Users struct {
	Count  int
	Sample []Referrer
}

func (u *Users) add(r Referrer) {
	u.Count++
	if len(u.Sample) < SampleSize {
		u.Sample = append(u.Sample, r)
	}
}

// InvalidRef is a reference that does not parse, with the object and container naming it.
type InvalidRef struct {
	Referrer Referrer
	// Where is the container ("container web", "init container setup") or empty for a build
	// source.
	Where string
	// Kind is what the reference should have been: image, ImageStreamImage, ImageStreamTag.
	Kind      string
	Reference string
	Err       string
}

// Error is oc's line: `pod/web-1 namespace=shop: container web: invalid image reference "x": ...`.
func (e InvalidRef) Error() string {
	r := e.Referrer.String()
	if e.Where != "" {
		r += ": " + e.Where
	}
	return fmt.Sprintf("%s: invalid %s reference %q: %s", r, e.Kind, e.Reference, e.Err)
}

// Referrers is what the cluster's objects use, reduced.
type Referrers struct {
	Tags    map[TagRef]*Users
	Images  map[ImageRef]*Users
	Invalid []InvalidRef
}

// NewReferrers returns an empty set.
func NewReferrers() *Referrers {
	return &Referrers{Tags: map[TagRef]*Users{}, Images: map[ImageRef]*Users{}}
}

// UseTag records that r uses the tag t.
func (rs *Referrers) UseTag(t TagRef, r Referrer) {
	u := rs.Tags[t]
	if u == nil {
		u = &Users{}
		rs.Tags[t] = u
	}
	u.add(r)
}

// UseImage records that r uses the image i by digest.
func (rs *Referrers) UseImage(i ImageRef, r Referrer) {
	u := rs.Images[i]
	if u == nil {
		u = &Users{}
		rs.Images[i] = u
	}
	u.add(r)
}

// Limits is, per namespace, the smallest max.storage of the openshift.io/Image limits of its
// LimitRanges (bytes); a namespace without one is absent.
type Limits map[string]int64

// Options are the ordinary prune's settings, as oc's flags name them.
type Options struct {
	// Now is when the run started; KeepYoungerThan counts back from it.
	Now time.Time
	// KeepYoungerThan keeps history items, Images, streams and non-running pods' references
	// younger than this (-keep-younger-than, 60m). Not used in size-limit mode.
	KeepYoungerThan time.Duration
	// KeepTagRevisions keeps this many newest revisions of every tag (-keep-tag-revisions, 3).
	// Not used in size-limit mode.
	KeepTagRevisions int
	// PruneOverSizeLimit removes the revisions whose Image exceeds its namespace's limit and
	// keeps the rest (-prune-over-size-limit).
	PruneOverSizeLimit bool
	// All prunes every Image; false prunes only managed ones (-all, true).
	All bool
	// Namespace restricts the prune to the streams of one namespace: no Image and no blob is
	// removed (-namespace).
	Namespace string
	// PruneRegistry removes the registry data of what goes (-prune-registry, true).
	PruneRegistry bool
}

// Cutoff is the time before which things are old enough to prune.
func (o Options) Cutoff() time.Time { return o.Now.Add(-o.KeepYoungerThan) }

// The I/O the ordinary prune needs, behind narrow interfaces: imageapi implements Cluster,
// storage (through the hard prune's Remover, with cache invalidation) the registry side.

// Cluster reads and changes the image API for the ordinary prune.
type Cluster interface {
	// UpdateStream reads the stream namespace/name afresh, calls decide on it and writes its
	// status without the items and tags the plan removes, retrying from the read on a
	// conflict (client-go's retry.RetryOnConflict). It returns the plan that was applied; nil
	// when the stream no longer exists. decide is pure and may be called more than once.
	UpdateStream(
		ctx context.Context,
		namespace, name string,
		decide func(*Stream) *StreamPlan,
	) (*StreamPlan, error)
	// DeleteImage deletes the Image named d; an Image already gone is not an error.
	DeleteImage(ctx context.Context, d digest.Digest) error
}

// StreamPlan is the decision for one image stream: the fate of every history item, and the
// registry data of the stream's repository that the removed items held.
type StreamPlan struct {
	Stream *Stream
	// Items has one decision per history item, kept or removed, in the stream's order.
	Items []ItemDecision
	// Removed counts the removed items ("Deleting N items from image stream ns/name").
	Removed int
	// EmptyTags are the tags left without items: they go from status.tags.
	EmptyTags []string
	// LayerLinks are the repository's layer links that no item left uses any more;
	// ManifestLinks its manifest links no item left names. Empty unless PruneRegistry.
	LayerLinks, ManifestLinks []digest.Digest
	// LinksKeptFor, when set, is a kept item's Image (or a child of it) that does not name
	// every blob it uses (prune.Image.Incomplete): any link may be one it needs, so none goes.
	LinksKeptFor digest.Digest
}

// ItemDecision is the fate of one history item.
type ItemDecision struct {
	Tag string
	// Revision is the item's position in its tag's history (0 is the tag's current image), of
	// Of items.
	Revision, Of int
	Item         Item
	Remove       bool
	Reason       Reason
	// Users are the referrers that keep the item, when that is the reason.
	Users *Users
}
