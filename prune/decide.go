package prune

import (
	"fmt"
	"slices"
	"sort"
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

// Plan is the garbage: what the sweep removes, each with its reason. Every slice is sorted, so
// the same inputs give the same plan and the same output.
type Plan struct {
	Repositories    []RepositoryAction
	Tags            []TagAction
	TagIndexEntries []TagIndexAction
	ManifestLinks   []LinkAction
	LayerLinks      []LinkAction
	Uploads         []UploadAction
	Blobs           []BlobAction
	// UnresolvedTags are tags whose current link must be read before they can be decided:
	// their index holds both manifests that stay and manifests that go. The plan leaves them
	// alone; Run reads them and decides again.
	UnresolvedTags []TagRef
}

// RepositoryAction removes a whole repository.
type RepositoryAction struct {
	Name string
	// OnlyDataDirs says nested repositories live below this one, so only its own _manifests,
	// _layers and _uploads go, never its directory.
	OnlyDataDirs bool
	Reason       string
}

// TagAction removes a tag (its current link and its index).
type TagAction struct {
	Repository, Tag string
	Manifest        digest.Digest
	Reason          string
}

// TagIndexAction removes one entry of the index of a tag that stays.
type TagIndexAction struct {
	Repository, Tag string
	Digest          digest.Digest
}

// LinkAction removes a manifest revision link or a layer link.
type LinkAction struct {
	Repository string
	Digest     digest.Digest
	Reason     string
}

// UploadAction removes an unfinished upload.
type UploadAction struct {
	Repository, ID string
	Size           int64
	Reason         string
}

// BlobAction removes a blob.
type BlobAction struct {
	Digest digest.Digest
	Size   int64
	Reason string
}

// BlobBytes is the total size of the blobs in the plan.
func (p *Plan) BlobBytes() int64 {
	var n int64
	for _, b := range p.Blobs {
		n += b.Size
	}
	return n
}

// Decide computes the garbage from what is stored and what is referenced. It is a pure
// function: no storage, no clock, no logging.
//
// The rules:
//   - a repository whose image stream does not exist goes whole;
//   - a manifest revision link stays only if its stream's tag history names it (or a list that
//     it is a child of) and some Image still names the manifest;
//   - a layer link stays only if an image of the stream uses the blob and some Image names it;
//   - a list that stays keeps all it reaches, at any depth: where an Image is missing (or does
//     not name its config) the manifest read from storage says what it uses (Resolve), and
//     where storage cannot say either, every link and tag of the repository stays;
//   - a tag goes with the manifest its current link names; index entries of removed manifests go;
//   - an upload goes once older than UploadPurgeAge;
//   - a blob goes when no Image names it and no link that stays points at it;
//   - anything modified within KeepYoungerThan stays, whatever the above says, and a repository
//     holding a young manifest that no stream references keeps all its links (what the
//     manifest uses is not known without reading it).
//
// The last two rules together keep the invariant the sweep relies on: every link that stays
// points at a blob that stays.
func Decide(refs *References, inv *Inventory, opts Options) *Plan {
	cutoff := opts.Now.Add(-opts.KeepYoungerThan)
	young := func(t time.Time) bool { return t.After(cutoff) }
	uploadCutoff := opts.Now.Add(-opts.UploadPurgeAge)

	plan := &Plan{}
	// Blobs that links which stay point at: they must stay too.
	linked := NewDigestSet()

	for i := range inv.Repositories {
		repo := &inv.Repositories[i]
		rr := refs.Repository(repo.Name)
		if rr == nil && !young(repo.newest()) {
			plan.Repositories = append(plan.Repositories, RepositoryAction{
				Name:         repo.Name,
				OnlyDataDirs: repo.HasNested,
				Reason:       NoStreamReason(repo.Name),
			})
			continue
		}
		decideRepository(plan, linked, refs, rr, repo, young, uploadCutoff)
	}

	for _, b := range inv.Blobs {
		if refs.named(b.Digest) || linked.Has(b.Digest) || young(b.ModTime) {
			continue
		}
		plan.Blobs = append(plan.Blobs, BlobAction{Digest: b.Digest, Size: b.Size, Reason: "no image references it"})
	}

	plan.sort()
	return plan
}

// NoStreamReason says why a repository without an image stream goes: a name of two
// components may still get one (its stream does not exist); any other name never can.
func NoStreamReason(repo string) string {
	ns, name, ok := strings.Cut(repo, "/")
	if !ok || strings.Contains(name, "/") {
		return fmt.Sprintf("no image stream can name it: %s is not <namespace>/<name>", repo)
	}
	if strings.ToLower(repo) != repo || ns == "" || name == "" {
		return fmt.Sprintf("no image stream can name it: %s is not a valid <namespace>/<name>", repo)
	}
	return fmt.Sprintf("image stream %s does not exist", repo)
}

// manifestGoneReason says why a manifest link goes; rr is nil when the repository has no image
// stream.
func manifestGoneReason(refs *References, rr *RepositoryReferences, repo string, d digest.Digest) string {
	switch {
	case rr == nil:
		return NoStreamReason(repo)
	case rr.Manifests.Has(d):
		return fmt.Sprintf("its Image does not exist (the tag history of image stream %s still names it)", repo)
	default:
		return fmt.Sprintf("not in the tag history of image stream %s", repo)
	}
}

// decideRepository decides link by link within a repository that stays. rr is nil for a
// repository without an image stream that holds young data: its old links go one by one.
func decideRepository(plan *Plan, linked *DigestSet, refs *References, rr *RepositoryReferences, repo *Repository, young func(time.Time) bool, uploadCutoff time.Time) {
	layerReason := fmt.Sprintf("not used by any image of image stream %s", repo.Name)
	if rr == nil {
		layerReason = NoStreamReason(repo.Name)
	}

	decideUploads(plan, repo, young, uploadCutoff)
	if rr.failsClosed() {
		// What the stream uses is not fully known: every link and tag stays, and so every
		// blob they name.
		for _, l := range repo.Manifests {
			linked.Add(l.Digest)
		}
		for _, l := range repo.Layers {
			linked.Add(l.Digest)
		}
		for _, t := range repo.Tags {
			if !t.CurrentKnown && (t.CurrentLinkMissing || len(t.Index) == 0) {
				// The index does not say what the tag points at: read its current link, so
				// that the blob it names stays too.
				plan.UnresolvedTags = append(plan.UnresolvedTags, TagRef{Repository: repo.Name, Tag: t.Name})
				continue
			}
			linked.Add(t.Current)
			for _, d := range t.Index {
				linked.Add(d)
			}
		}
		return
	}

	held, holdsYoungManifest := youngHolds(repo, rr, refs, young)
	heldByYoungTags := NewDigestSet()
	for _, d := range held {
		heldByYoungTags.Add(d)
		// A young tag keeps the blob it names even without a revision link.
		linked.Add(d)
	}

	keptManifests := NewDigestSet()
	for _, l := range repo.Manifests {
		if refs.streamKeepsManifest(rr, l.Digest) || young(l.ModTime) || heldByYoungTags.Has(l.Digest) || holdsYoungManifest {
			keptManifests.Add(l.Digest)
			linked.Add(l.Digest)
			continue
		}
		plan.ManifestLinks = append(plan.ManifestLinks, LinkAction{Repository: repo.Name, Digest: l.Digest, Reason: manifestGoneReason(refs, rr, repo.Name, l.Digest)})
	}

	for _, t := range repo.Tags {
		if t.CurrentKnown && t.CurrentLinkMissing && !young(t.ModTime) {
			plan.Tags = append(plan.Tags, TagAction{Repository: repo.Name, Tag: t.Name, Reason: "has no current link (an interrupted deletion)"})
			continue
		}
		if !t.CurrentKnown && !young(t.ModTime) {
			if t.CurrentLinkMissing || len(t.Index) == 0 {
				// A tag without a current link or without an index is the remains of an
				// interrupted deletion: its index does not tell what it points at, so the link
				// is read.
				plan.UnresolvedTags = append(plan.UnresolvedTags, TagRef{Repository: repo.Name, Tag: t.Name})
				continue
			}
			// The current link is one of the index entries: when they all stay, so does the tag;
			// when they all go, so does the tag. Otherwise the times may tell which entry is
			// current: trusted when that manifest stays (the tag stays, at worst pointing at a
			// removed manifest if the times lied); never to remove a tag, which takes a read.
			kept := 0
			for _, d := range t.Index {
				if keptManifests.Has(d) {
					kept++
				}
			}
			if kept == len(t.Index) {
				continue
			}
			if kept == 0 {
				plan.Tags = append(plan.Tags, TagAction{Repository: repo.Name, Tag: t.Name, Reason: "every manifest its index names goes, the one it points at included"})
				continue
			}
			d, ok := t.likelyCurrent()
			if !ok || !keptManifests.Has(d) {
				plan.UnresolvedTags = append(plan.UnresolvedTags, TagRef{Repository: repo.Name, Tag: t.Name})
				continue
			}
			t.Current, t.CurrentKnown = d, true
		}
		// A tag stays while the manifest it points at stays; a tag whose current link could not
		// be read is left alone, since we cannot tell what it points at.
		if t.Current == "" || keptManifests.Has(t.Current) || young(t.ModTime) {
			if t.Current != "" && !keptManifests.Has(t.Current) {
				linked.Add(t.Current)
			}
			if !t.CurrentKnown { // young, not read: its whole index stays (held above)
				continue
			}
			for _, d := range t.Index {
				if d != t.Current && !keptManifests.Has(d) && !young(t.ModTime) {
					plan.TagIndexEntries = append(plan.TagIndexEntries, TagIndexAction{Repository: repo.Name, Tag: t.Name, Digest: d})
				}
			}
			continue
		}
		why := fmt.Sprintf("the manifest it points at goes (%s)", manifestGoneReason(refs, rr, repo.Name, t.Current))
		if !slices.ContainsFunc(repo.Manifests, func(l Link) bool { return l.Digest == t.Current }) {
			why = "the repository does not link the manifest it points at"
		}
		plan.Tags = append(plan.Tags, TagAction{Repository: repo.Name, Tag: t.Name, Manifest: t.Current, Reason: why})
	}

	for _, l := range repo.Layers {
		if refs.streamKeepsLayer(rr, l.Digest) || young(l.ModTime) || holdsYoungManifest {
			linked.Add(l.Digest)
			continue
		}
		plan.LayerLinks = append(plan.LayerLinks, LinkAction{Repository: repo.Name, Digest: l.Digest, Reason: layerReason})
	}

}

// decideUploads removes the unfinished uploads older than the purge age.
func decideUploads(plan *Plan, repo *Repository, young func(time.Time) bool, uploadCutoff time.Time) {
	for _, u := range repo.Uploads {
		if u.ModTime.Before(uploadCutoff) && !young(u.ModTime) {
			plan.Uploads = append(plan.Uploads, UploadAction{Repository: repo.Name, ID: u.ID, Size: u.Size, Reason: "unfinished upload older than the purge age"})
		}
	}
}

// youngHolds returns the manifests young tags name (the current one when known, else their
// whole index), and whether the repository holds a manifest kept only by the grace period:
// one pushed during or just before the run, which may use layers, a config and children
// whose links and blobs are old and that no Image names (a push skips uploading what the
// repository already links). The decision does not read manifests, so such a repository
// keeps every link for this run; its garbage goes the next.
func youngHolds(repo *Repository, rr *RepositoryReferences, refs *References, young func(time.Time) bool) (held []digest.Digest, holdsYoungManifest bool) {
	for _, t := range repo.Tags {
		if !young(t.ModTime) {
			continue
		}
		if t.CurrentKnown {
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

func (p *Plan) sort() {
	sort.Slice(p.Repositories, func(i, j int) bool { return p.Repositories[i].Name < p.Repositories[j].Name })
	sort.Slice(p.Tags, func(i, j int) bool {
		a, b := p.Tags[i], p.Tags[j]
		return a.Repository < b.Repository || a.Repository == b.Repository && a.Tag < b.Tag
	})
	sort.Slice(p.TagIndexEntries, func(i, j int) bool {
		a, b := p.TagIndexEntries[i], p.TagIndexEntries[j]
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		return a.Tag < b.Tag || a.Tag == b.Tag && a.Digest < b.Digest
	})
	sortLinks(p.ManifestLinks)
	sortLinks(p.LayerLinks)
	sort.Slice(p.Uploads, func(i, j int) bool {
		a, b := p.Uploads[i], p.Uploads[j]
		return a.Repository < b.Repository || a.Repository == b.Repository && a.ID < b.ID
	})
	sort.Slice(p.Blobs, func(i, j int) bool { return p.Blobs[i].Digest < p.Blobs[j].Digest })
}

func sortLinks(links []LinkAction) {
	sort.Slice(links, func(i, j int) bool {
		a, b := links[i], links[j]
		return a.Repository < b.Repository || a.Repository == b.Repository && a.Digest < b.Digest
	})
}
