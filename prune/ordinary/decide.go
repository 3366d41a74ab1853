package ordinary

import (
	"cmp"
	"slices"

	"github.com/opencontainers/go-digest"
)

// DecideStream decides the fate of every history item of s, as oc does, and, with
// opts.PruneRegistry, which of the repository's links the removed items leave unused. It is
// pure: UpdateStream calls it on each fresh read of the stream.
//
// Each item of each tag, at revision rev (0 is the tag's current image), is settled by the
// first rule that holds:
//
//  1. young-stream: not in size-limit mode, and the stream was created after the cutoff;
//  2. young: not in size-limit mode, and the item was created after the cutoff;
//  3. tag-used: rev is 0 and something uses the tag;
//  4. image-missing (removed): the item's Image does not exist;
//  5. size-limit mode: within-size-limit when the namespace has no limit or the Image does not
//     exceed it; otherwise: within-revisions when rev < opts.KeepTagRevisions;
//  6. image-used-by-digest: something uses the image by digest through this stream;
//  7. removed: over-size-limit in size-limit mode, old-revision otherwise.
func DecideStream(
	s *Stream, images map[digest.Digest]*Image, refs *Referrers, limits Limits, opts Options,
) *StreamPlan {
	plan := &StreamPlan{Stream: s}
	youngStream := !opts.PruneOverSizeLimit && s.Created.After(opts.Cutoff())
	for _, tag := range s.Tags {
		removed := 0
		for rev, item := range tag.Items {
			d := ItemDecision{Tag: tag.Name, Revision: rev, Of: len(tag.Items), Item: item}
			if youngStream {
				d.Reason = ReasonYoungStream
			} else {
				d.Reason, d.Users = decideItem(s, tag.Name, rev, item, images, refs, limits, opts)
			}
			d.Remove = !d.Reason.Keeps()
			if d.Remove {
				removed++
			}
			plan.Items = append(plan.Items, d)
		}
		plan.Removed += removed
		// A tag that had no items loses none: it is left as it is, so that a stream the
		// prune removes nothing from needs no update.
		if removed > 0 && removed == len(tag.Items) {
			plan.EmptyTags = append(plan.EmptyTags, tag.Name)
		}
	}
	if opts.PruneRegistry && plan.Removed > 0 {
		plan.LayerLinks, plan.ManifestLinks, plan.LinksKeptFor = releasedLinks(plan, images)
	}
	return plan
}

// decideItem applies rules 2 to 7 of DecideStream to one item.
func decideItem(
	s *Stream, tag string, rev int, item Item,
	images map[digest.Digest]*Image, refs *Referrers, limits Limits, opts Options,
) (Reason, *Users) {
	sizeMode := opts.PruneOverSizeLimit
	if !sizeMode && item.Created.After(opts.Cutoff()) {
		return ReasonYoung, nil
	}
	if rev == 0 {
		if u, ok := refs.tagUsers(TagRef{Namespace: s.Namespace, Name: s.Name, Tag: tag}); ok {
			return ReasonTagUsed, u
		}
	}
	img := images[item.Image]
	if img == nil {
		return ReasonImageMissing, nil
	}
	if sizeMode {
		if limit, ok := limits[s.Namespace]; !ok || img.Size <= limit {
			return ReasonWithinSizeLimit, nil
		}
	} else if rev < opts.KeepTagRevisions {
		return ReasonWithinRevisions, nil
	}
	if u, ok := refs.imageUsers(ImageRef{Namespace: s.Namespace, Name: s.Name, Digest: item.Image}); ok {
		return ReasonImageUsedByDigest, u
	}
	if sizeMode {
		return ReasonOverSizeLimit, nil
	}
	return ReasonOldRevision, nil
}

// tagUsers are the users of t; a nil set has none.
func (rs *Referrers) tagUsers(t TagRef) (*Users, bool) {
	if rs == nil {
		return nil, false
	}
	u, ok := rs.Tags[t]
	return u, ok && u != nil
}

// imageUsers are the users of i; a nil set has none.
func (rs *Referrers) imageUsers(i ImageRef) (*Users, bool) {
	if rs == nil {
		return nil, false
	}
	u, ok := rs.Images[i]
	return u, ok && u != nil
}

// repoData is what an item naming one manifest holds in the stream's repository: manifest
// links (the manifest and, for a list, its children) and layer links (their layers and
// configs). Each is a set, so that what one item adds, its removal takes back exactly.
type repoData struct {
	manifests, blobs []digest.Digest
	// incomplete is an Image among them that does not name every blob it uses.
	incomplete digest.Digest
}

// dataOf is the registry data of the manifest d, through images: nothing when its Image does
// not exist; for a manifest list, also the children (and theirs) whose Images exist. oc counts
// only the list itself, and so deletes the children's links while the list still names them.
func dataOf(d digest.Digest, images map[digest.Digest]*Image) repoData {
	if images[d] == nil {
		return repoData{}
	}
	manifests := map[digest.Digest]bool{}
	blobs := map[digest.Digest]bool{}
	var incomplete digest.Digest
	var visit func(d digest.Digest)
	visit = func(d digest.Digest) {
		img := images[d]
		if img == nil || manifests[d] {
			return
		}
		manifests[d] = true
		if img.Incomplete && incomplete == "" {
			incomplete = d
		}
		for _, b := range img.Blobs() {
			blobs[b] = true
		}
		for _, c := range img.Children {
			visit(c)
		}
	}
	visit(d)
	return repoData{manifests: sortedKeys(manifests), blobs: sortedKeys(blobs), incomplete: incomplete}
}

// releasedLinks counts, over every item of the plan's stream, the links it holds, takes back
// those of the removed items, and returns the links no item holds any more, each once, sorted.
// When a kept item holds an Image that does not name every blob it uses, it returns no link
// and that Image: what it needs is not known.
func releasedLinks(
	plan *StreamPlan, images map[digest.Digest]*Image,
) (layers, manifests []digest.Digest, keptFor digest.Digest) {
	cache := map[digest.Digest]repoData{}
	data := func(d digest.Digest) repoData {
		r, ok := cache[d]
		if !ok {
			r = dataOf(d, images)
			cache[d] = r
		}
		return r
	}
	manifestCount := map[digest.Digest]int{}
	layerCount := map[digest.Digest]int{}
	for _, d := range plan.Items {
		r := data(d.Item.Image)
		if !d.Remove && r.incomplete != "" {
			return nil, nil, r.incomplete
		}
		for _, m := range r.manifests {
			manifestCount[m]++
		}
		for _, b := range r.blobs {
			layerCount[b]++
		}
	}
	goneManifests := map[digest.Digest]bool{}
	goneLayers := map[digest.Digest]bool{}
	for _, d := range plan.Items {
		if !d.Remove {
			continue
		}
		r := data(d.Item.Image)
		for _, m := range r.manifests {
			if manifestCount[m]--; manifestCount[m] == 0 {
				goneManifests[m] = true
			}
		}
		for _, b := range r.blobs {
			if layerCount[b]--; layerCount[b] == 0 {
				goneLayers[b] = true
			}
		}
	}
	return sortedKeys(goneLayers), sortedKeys(goneManifests), ""
}

func sortedKeys(set map[digest.Digest]bool) []digest.Digest {
	if len(set) == 0 {
		return nil
	}
	out := make([]digest.Digest, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Remaining is the stream as the plan leaves it: the kept items, in order, and the tags that
// keep any (a tag that had none stays as it was). A plan whose items do not match its stream
// (not made by DecideStream) leaves the stream whole: when in doubt, keep.
func (p *StreamPlan) Remaining() *Stream {
	if p.Stream == nil {
		return nil
	}
	total := 0
	for _, t := range p.Stream.Tags {
		total += len(t.Items)
	}
	if total != len(p.Items) {
		return p.Stream
	}
	out := *p.Stream
	out.Tags = nil
	next := 0
	for _, t := range p.Stream.Tags {
		kept := Tag{Name: t.Name}
		for range t.Items {
			if d := p.Items[next]; !d.Remove {
				kept.Items = append(kept.Items, d.Item)
			}
			next++
		}
		if len(kept.Items) > 0 || len(t.Items) == 0 {
			out.Tags = append(out.Tags, kept)
		}
	}
	return &out
}

// ImagePlan is the decision for the Images: the fate of each, and what to delete.
type ImagePlan struct {
	// Images has one decision per Image, in digest order.
	Images []ImageDecision
	// Delete are the Images to delete, in digest order, each with the blobs that go once it
	// is gone.
	Delete []ImageDeletion
	// A kept Image that does not name every blob it uses (prune.Image.Incomplete) may use a
	// blob of a deleted one. BlobsKeptFor is such an Image without layers, a manifest list
	// recorded without its children (or an Image naming no blob at all): any blob may be one
	// it uses, so no blob goes. ConfigsKeptFor is one with layers, which lacks only its
	// config: the deleted Images' configs stay. Each is the first such Image in digest order.
	BlobsKeptFor, ConfigsKeptFor digest.Digest
}

// ImageDecision is the fate of one Image.
type ImageDecision struct {
	Image  digest.Digest
	Remove bool
	Reason Reason
}

// ImageDeletion is an Image to delete and the blobs that go with it.
type ImageDeletion struct {
	Image digest.Digest
	// Blobs are the Image's blobs (its manifest, config and layers) that no kept Image names,
	// sorted; empty unless PruneRegistry. A blob that several deleted Images name is listed
	// under each of them, and goes only once all of them are gone: an Image whose deletion
	// fails keeps every blob it names.
	Blobs []digest.Digest
}

// DecideImages decides which Images go once the streams are as remaining says (the kept items
// of every stream), and, with opts.PruneRegistry, which blobs go with them. images is keyed by
// manifest digest. It is pure.
//
// A namespaced prune (opts.Namespace) decides nothing: it never removes Images or blobs.
// Otherwise an Image is kept when a remaining item names it (named-by-stream), or a manifest
// list so kept lists it, directly or through other lists (child-of-used-list); when -all=false
// and it is not managed (external); when, not in size-limit mode, it was created after the
// cutoff (young-image). Every other Image goes (unused). A blob goes with the deleted Images
// when no kept Image names it, and no kept Image may use it unnamed (see BlobsKeptFor).
func DecideImages(images map[digest.Digest]*Image, remaining []*Stream, opts Options) *ImagePlan {
	plan := &ImagePlan{}
	if opts.Namespace != "" {
		return plan
	}
	named := map[digest.Digest]bool{}
	for _, s := range remaining {
		if s == nil {
			continue
		}
		for _, t := range s.Tags {
			for _, it := range t.Items {
				named[it.Image] = true
			}
		}
	}
	children := map[digest.Digest]bool{}
	queue := sortedKeys(named)
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		img := images[d]
		if img == nil {
			continue
		}
		for _, c := range img.Children {
			if !named[c] && !children[c] {
				children[c] = true
				queue = append(queue, c)
			}
		}
	}

	all := make([]digest.Digest, 0, len(images))
	for d := range images {
		all = append(all, d)
	}
	slices.Sort(all)
	cutoff := opts.Cutoff()
	keptBlobs := map[digest.Digest]bool{}
	removedConfigs := map[digest.Digest]bool{}
	for _, d := range all {
		img := images[d]
		dec := ImageDecision{Image: d}
		switch {
		case named[d]:
			dec.Reason = ReasonNamedByStream
		case children[d]:
			dec.Reason = ReasonChildOfUsedList
		case !opts.All && !img.Managed:
			dec.Reason = ReasonExternal
		case !opts.PruneOverSizeLimit && img.Created.After(cutoff):
			dec.Reason = ReasonYoungImage
		default:
			dec.Reason = ReasonUnused
			dec.Remove = true
		}
		plan.Images = append(plan.Images, dec)
		switch {
		case dec.Remove:
			if img.Config != "" {
				removedConfigs[img.Config] = true
			}
		case img.Incomplete && len(img.Layers) == 0:
			plan.BlobsKeptFor = cmp.Or(plan.BlobsKeptFor, d)
		case img.Incomplete:
			plan.ConfigsKeptFor = cmp.Or(plan.ConfigsKeptFor, d)
		}
		if !dec.Remove {
			for _, b := range imageBlobs(d, img) {
				keptBlobs[b] = true
			}
		}
	}
	for _, dec := range plan.Images {
		if !dec.Remove {
			continue
		}
		del := ImageDeletion{Image: dec.Image}
		if opts.PruneRegistry && plan.BlobsKeptFor == "" {
			for _, b := range imageBlobs(dec.Image, images[dec.Image]) {
				if !keptBlobs[b] && (plan.ConfigsKeptFor == "" || !removedConfigs[b]) {
					del.Blobs = append(del.Blobs, b)
				}
			}
		}
		plan.Delete = append(plan.Delete, del)
	}
	return plan
}

// imageBlobs are the blobs the Image named d holds in storage: its manifest and Blobs(),
// each once, sorted.
func imageBlobs(d digest.Digest, img *Image) []digest.Digest {
	set := map[digest.Digest]bool{d: true}
	for _, b := range img.Blobs() {
		set[b] = true
	}
	return sortedKeys(set)
}
