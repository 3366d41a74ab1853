package prune

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Options are the knobs of the decision.
type Options struct {
	// Now is the time the run started; ages are measured from it.
	Now time.Time
	// KeepYoungerThan keeps every blob, link and upload modified more recently than Now minus
	// this, whatever the references say: a push that was under way when the image API was read
	// must not lose its blobs.
	KeepYoungerThan time.Duration
	// UploadPurgeAge is the age past which an unfinished upload is removed (distribution's
	// upload purger default is 168h).
	UploadPurgeAge time.Duration
}

// Plan is the garbage: what the sweep removes, each object with its reason, kept per kind.
// Every kind's objects are sorted, so the same inputs give the same plan and the same output.
type Plan struct {
	objects [numKinds][]Object
	// UnresolvedTags are tags whose current link must be read before they can be decided:
	// their index holds both manifests that stay and manifests that go. The plan leaves them
	// alone; Run reads them and decides again.
	UnresolvedTags []TagRef
}

// NewPlan returns a plan of the given objects, sorted as Decide sorts them.
func NewPlan(objects ...Object) *Plan {
	p := &Plan{}
	for _, o := range objects {
		p.add(o)
	}
	p.sort()
	return p
}

func (p *Plan) add(o Object) { p.objects[o.Kind] = append(p.objects[o.Kind], o) }

// Of returns the plan's objects of one kind.
func (p *Plan) Of(k Kind) []Object { return p.objects[k] }

// Len is how many objects the plan removes.
func (p *Plan) Len() int {
	n := 0
	for _, objs := range p.objects {
		n += len(objs)
	}
	return n
}

// Bytes is the total size of the plan's objects of one kind.
func (p *Plan) Bytes(k Kind) int64 {
	var n int64
	for _, o := range p.objects[k] {
		n += o.Size
	}
	return n
}

// BlobBytes is the total size of the blobs in the plan.
func (p *Plan) BlobBytes() int64 { return p.Bytes(KindBlob) }

// Decide computes the garbage from what is stored and what is referenced. It is a pure
// function: no storage, no clock, no logging. prune/doc.go states the rules; each is one
// Reason, and every object removed carries the reason that removed it.
func Decide(refs *References, inv *Inventory, opts Options) *Plan {
	return decide(refs, inv, opts, nil)
}

// decision is one run of Decide.
type decision struct {
	refs         *References
	cutoff       time.Time // the grace period holds what was modified after it
	uploadCutoff time.Time
	plan         *Plan
	// linked are the blobs that links which stay point at: they must stay too.
	linked *DigestSet
	// observe, when set, sees every object decided, with the reason it goes or stays: the
	// view Explain takes. The prune itself keeps no record of what stays.
	observe func(Object)
}

// decide is Decide, showing every decision to observe (which may be nil).
func decide(refs *References, inv *Inventory, opts Options, observe func(Object)) *Plan {
	d := &decision{
		refs:         refs,
		cutoff:       opts.Now.Add(-opts.KeepYoungerThan),
		uploadCutoff: opts.Now.Add(-opts.UploadPurgeAge),
		plan:         &Plan{},
		linked:       NewDigestSet(),
		observe:      observe,
	}
	for i := range inv.Repositories {
		repo := &inv.Repositories[i]
		rr := refs.Repository(repo.Name)
		if rr == nil && !d.young(repo.newest()) {
			d.settle(Object{Kind: KindRepository, Repository: repo.Name, Nested: repo.Nested}, ReasonNoStream)
			continue
		}
		d.repository(rr, repo)
	}
	for _, b := range inv.Blobs {
		d.settle(Object{Kind: KindBlob, Digest: b.Digest, Size: b.Size}, d.blobReason(b))
	}
	d.plan.sort()
	return d.plan
}

func (d *decision) young(t time.Time) bool { return t.After(d.cutoff) }

// settle records that o goes or stays for reason why, and tells whether it stays.
func (d *decision) settle(o Object, why Reason) bool {
	o.Reason = why
	keeps := why.Keeps()
	if !keeps {
		d.plan.add(o)
	}
	if d.observe != nil {
		d.observe(o)
	}
	return keeps
}

// unresolved leaves a tag to be read before it is decided.
func (d *decision) unresolved(repo *Repository, t *Tag) {
	d.plan.UnresolvedTags = append(d.plan.UnresolvedTags, TagRef{Repository: repo.Name, Tag: t.Name})
}

// blobReason: a blob stays while an Image (or a manifest read from storage) names it, a link
// that stays points at it, or the grace period holds it.
func (d *decision) blobReason(b Blob) Reason {
	switch {
	case d.refs.Blobs.Has(b.Digest):
		return ReasonNamedByImage
	case d.refs.stored.Has(b.Digest):
		return ReasonReadFromStorage
	case d.linked.Has(b.Digest):
		return ReasonLinked
	case d.young(b.ModTime):
		return ReasonYoung
	}
	return ReasonUnreferenced
}

// manifestGone says why a manifest link of a repository that stays goes; rr is nil when the
// repository has no image stream.
func manifestGone(rr *RepositoryReferences, d digest.Digest) Reason {
	switch {
	case rr == nil:
		return ReasonNoStream
	case rr.Manifests.Has(d):
		return ReasonImageDeleted
	}
	return ReasonNotInHistory
}

// repository decides link by link within a repository that stays. rr is nil for a repository
// without an image stream that holds young data: its old links go one by one.
func (d *decision) repository(rr *RepositoryReferences, repo *Repository) {
	d.uploads(repo)
	if rr.failsClosed() {
		d.failClosed(repo)
		return
	}

	held, holdsYoungManifest := youngHolds(repo, rr, d.refs, d.young)
	heldByYoungTags := NewDigestSet()
	for _, m := range held {
		heldByYoungTags.Add(m)
		// A young tag keeps the blob it names even without a revision link.
		d.linked.Add(m)
	}

	keptManifests := NewDigestSet()
	for _, l := range repo.Manifests {
		why := manifestGone(rr, l.Digest)
		switch {
		case d.refs.streamKeepsManifest(rr, l.Digest):
			why = ReasonInHistory
		case d.young(l.ModTime):
			why = ReasonYoung
		case heldByYoungTags.Has(l.Digest):
			why = ReasonYoungTag
		case holdsYoungManifest:
			why = ReasonYoungManifest
		}
		if d.settle(Object{Kind: KindManifestLink, Repository: repo.Name, Digest: l.Digest}, why) {
			keptManifests.Add(l.Digest)
			d.linked.Add(l.Digest)
		}
	}

	for i := range repo.Tags {
		d.tag(rr, repo, repo.Tags[i], keptManifests)
	}

	for _, l := range repo.Layers {
		why := ReasonNotUsed
		switch {
		case d.refs.streamKeepsLayer(rr, l.Digest):
			why = ReasonUsedByStream
		case d.young(l.ModTime):
			why = ReasonYoung
		case holdsYoungManifest:
			why = ReasonYoungManifest
		case rr == nil:
			why = ReasonNoStream
		}
		if d.settle(Object{Kind: KindLayerLink, Repository: repo.Name, Digest: l.Digest}, why) {
			d.linked.Add(l.Digest)
		}
	}
}

// failClosed keeps every link and tag of a repository whose stream's use is not fully known,
// and so every blob they name.
func (d *decision) failClosed(repo *Repository) {
	for _, l := range repo.Manifests {
		d.linked.Add(l.Digest)
		d.settle(Object{Kind: KindManifestLink, Repository: repo.Name, Digest: l.Digest}, ReasonFailsClosed)
	}
	for _, l := range repo.Layers {
		d.linked.Add(l.Digest)
		d.settle(Object{Kind: KindLayerLink, Repository: repo.Name, Digest: l.Digest}, ReasonFailsClosed)
	}
	for i := range repo.Tags {
		t := &repo.Tags[i]
		if t.State == TagUnlisted || t.State == TagUnread && len(t.Index) == 0 {
			// The index does not say what the tag points at: read its current link, so that
			// the blob it names stays too.
			d.unresolved(repo, t)
			continue
		}
		d.linked.Add(t.Current)
		d.settle(Object{Kind: KindTag, Repository: repo.Name, Name: t.Name, Digest: t.Current}, ReasonFailsClosed)
		for _, m := range t.Index {
			d.linked.Add(m)
			if m != t.Current {
				d.settle(
					Object{Kind: KindTagIndexEntry, Repository: repo.Name, Name: t.Name, Digest: m},
					ReasonFailsClosed,
				)
			}
		}
	}
}

// tag decides a tag and its index entries. t is a copy: what the times tell of its current
// link is not written back to the inventory.
func (d *decision) tag(rr *RepositoryReferences, repo *Repository, t Tag, keptManifests *DigestSet) {
	tag := Object{Kind: KindTag, Repository: repo.Name, Name: t.Name}
	entry := func(m digest.Digest, why Reason) {
		d.settle(Object{Kind: KindTagIndexEntry, Repository: repo.Name, Name: t.Name, Digest: m}, why)
	}
	if t.State == TagNoCurrentLink && !d.young(t.ModTime) {
		d.settle(tag, ReasonNoCurrentLink)
		return
	}
	if !t.read() && !d.young(t.ModTime) {
		if t.State == TagUnlisted || len(t.Index) == 0 {
			// A tag without a current link or without an index is the remains of an
			// interrupted deletion: its index does not tell what it points at, so the link
			// is read.
			d.unresolved(repo, &t)
			return
		}
		// The current link is one of the index entries: when they all stay, so does the tag;
		// when they all go, so does the tag. Otherwise the times may tell which entry is
		// current: trusted when that manifest stays (the tag stays, at worst pointing at a
		// removed manifest if the times lied); never to remove a tag, which takes a read.
		kept := 0
		for _, m := range t.Index {
			if keptManifests.Has(m) {
				kept++
			}
		}
		if kept == len(t.Index) {
			d.settle(tag, ReasonPointsAtKept)
			for _, m := range t.Index {
				entry(m, ReasonNamesKept)
			}
			return
		}
		if kept == 0 {
			d.settle(tag, ReasonIndexAllGo)
			return
		}
		m, ok := t.likelyCurrent()
		if !ok || !keptManifests.Has(m) {
			d.unresolved(repo, &t)
			return
		}
		t.Current, t.State = m, TagRead
	}
	tag.Digest = t.Current
	// A tag stays while the manifest it points at stays; a tag whose current link could not
	// be read is left alone, since we cannot tell what it points at.
	if t.Current == "" || keptManifests.Has(t.Current) || d.young(t.ModTime) {
		if t.Current != "" && !keptManifests.Has(t.Current) {
			d.linked.Add(t.Current)
		}
		why := ReasonPointsAtKept
		switch {
		case d.young(t.ModTime):
			why = ReasonYoung
		case t.Current == "":
			why = ReasonUnreadTag
		}
		d.settle(tag, why)
		for _, m := range t.Index {
			switch {
			case m == t.Current:
			case d.young(t.ModTime) || !t.read(): // young, not read: its whole index stays (held above)
				entry(m, ReasonYoung)
			case keptManifests.Has(m):
				entry(m, ReasonNamesKept)
			default:
				entry(m, ReasonEntryManifestGoes)
			}
		}
		return
	}
	if !slices.ContainsFunc(repo.Manifests, func(l Link) bool { return l.Digest == t.Current }) {
		d.settle(tag, ReasonManifestNotLinked)
		return
	}
	tag.Cause = manifestGone(rr, t.Current)
	d.settle(tag, ReasonManifestGoes)
}

// uploads removes the unfinished uploads older than the purge age.
func (d *decision) uploads(repo *Repository) {
	for _, u := range repo.Uploads {
		why := ReasonRecentUpload
		if u.ModTime.Before(d.uploadCutoff) && !d.young(u.ModTime) {
			why = ReasonStaleUpload
		}
		d.settle(Object{Kind: KindUpload, Repository: repo.Name, Name: u.ID, Size: u.Size}, why)
	}
}

// youngHolds returns the manifests young tags name (the current one when known, else their
// whole index), and whether the repository holds a manifest kept only by the grace period:
// one pushed during or just before the run, which may use layers, a config and children
// whose links and blobs are old and that no Image names (a push skips uploading what the
// repository already links). The decision does not read manifests, so such a repository
// keeps every link for this run; its garbage goes the next.
func youngHolds(
	repo *Repository,
	rr *RepositoryReferences,
	refs *References,
	young func(time.Time) bool,
) (held []digest.Digest, holdsYoungManifest bool) {
	for _, t := range repo.Tags {
		if !young(t.ModTime) {
			continue
		}
		if t.read() {
			if t.Current != "" {
				held = append(held, t.Current)
			}
			continue
		}
		held = append(held, t.Index...)
	}
	for _, d := range held {
		if !refs.streamKeepsManifest(rr, d) {
			holdsYoungManifest = true
		}
	}
	for _, l := range repo.Manifests {
		if young(l.ModTime) && !refs.streamKeepsManifest(rr, l.Digest) {
			holdsYoungManifest = true
		}
	}
	return held, holdsYoungManifest
}

// sort orders each kind's objects by repository, then name, then digest.
func (p *Plan) sort() {
	for k := range p.objects {
		slices.SortFunc(p.objects[k], func(a, b Object) int {
			return cmp.Or(strings.Compare(a.Repository, b.Repository), strings.Compare(a.Name, b.Name),
				strings.Compare(string(a.Digest), string(b.Digest)))
		})
	}
}
