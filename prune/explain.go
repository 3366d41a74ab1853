package prune

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
)

// StreamTags is an image stream with its tag histories in order: what -prune-explain and
// -restore need. The prune itself keeps only a Stream.
type StreamTags struct {
	// Repository is "<namespace>/<name>".
	Repository string
	Tags       []TagHistory
}

// TagHistory is one tag of an image stream and its history, newest first.
type TagHistory struct {
	Tag   string
	Items []TagItem
}

// TagItem is one item of a tag's history.
type TagItem struct {
	Image digest.Digest
	// Reference is the item's dockerImageReference.
	Reference string
}

// Stream reduces s to what the prune keeps.
func (s StreamTags) Stream() Stream {
	out := Stream{Repository: s.Repository}
	for _, t := range s.Tags {
		for _, item := range t.Items {
			out.Manifests = append(out.Manifests, item.Image)
		}
	}
	return out
}

// The roles an Image can give a digest.
const (
	RoleManifest = "manifest"
	RoleConfig   = "config"
	RoleLayer    = "layer"
	RoleChild    = "child"
)

// ImageUse says that an Image uses the explained digest, and how.
type ImageUse struct {
	Image digest.Digest
	Role  string
}

// TagPosition is an item of a tag history that keeps the explained digest: the item names
// Image, which uses the digest itself or through the manifest lists down to User.
type TagPosition struct {
	Repository string
	Tag        string
	// Position counts from 0, the newest item; Total is the length of the history.
	Position, Total int
	Image           digest.Digest
	// User is the Image that uses the digest; it differs from Image when Image is a manifest
	// list (or a list of lists) that names User.
	User digest.Digest
}

// Usage is what the image API says about one digest.
type Usage struct {
	Target digest.Digest
	Users  []ImageUse
	Tags   []TagPosition
}

// Explainer collects the references, like a ReferenceBuilder, and for one digest the Images
// that use it and the tag history items that name those Images. It is fed every Image before
// the first stream. Only the explain pass uses it: the prune's own pass keeps no positions.
type Explainer struct {
	target  digest.Digest
	refs    *ReferenceBuilder
	users   []ImageUse
	parents map[digest.Digest][]digest.Digest // child -> manifest lists naming it
	// leadsTo maps each manifest that keeps the target (its users and the lists above them)
	// to the user it leads to; built at the first stream.
	leadsTo map[digest.Digest]digest.Digest
	tags    []TagPosition
}

// NewExplainer returns an Explainer for target.
func NewExplainer(target digest.Digest) *Explainer {
	return &Explainer{target: target, refs: NewReferenceBuilder(), parents: map[digest.Digest][]digest.Digest{}}
}

// AddImage records an Image.
func (e *Explainer) AddImage(img Image) {
	e.refs.AddImage(img)
	use := func(role string) { e.users = append(e.users, ImageUse{Image: img.Manifest, Role: role}) }
	if img.Manifest == e.target {
		use(RoleManifest)
	}
	if img.Config == e.target {
		use(RoleConfig)
	}
	for _, l := range img.Layers {
		if l == e.target {
			use(RoleLayer)
			break
		}
	}
	for _, c := range img.Children {
		e.parents[c] = append(e.parents[c], img.Manifest)
		if c == e.target {
			use(RoleChild)
		}
	}
}

// AddStream records an image stream with its tag histories.
func (e *Explainer) AddStream(s StreamTags) {
	e.refs.AddStream(s.Stream())
	if e.leadsTo == nil {
		e.closeOverLists()
	}
	for _, t := range s.Tags {
		for i, item := range t.Items {
			if user, ok := e.leadsTo[item.Image]; ok {
				e.tags = append(
					e.tags,
					TagPosition{
						Repository: s.Repository,
						Tag:        t.Tag,
						Position:   i,
						Total:      len(t.Items),
						Image:      item.Image,
						User:       user,
					},
				)
			}
		}
	}
}

// closeOverLists finds the manifests that keep the target: its users, and the manifest lists
// that name them, at any depth (visited once each, so a malformed cycle cannot loop).
func (e *Explainer) closeOverLists() {
	e.leadsTo = map[digest.Digest]digest.Digest{}
	var pending []digest.Digest
	for _, u := range e.users {
		if _, seen := e.leadsTo[u.Image]; !seen {
			e.leadsTo[u.Image] = u.Image
			pending = append(pending, u.Image)
		}
	}
	for len(pending) > 0 {
		d := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		for _, p := range e.parents[d] {
			if _, seen := e.leadsTo[p]; !seen {
				e.leadsTo[p] = e.leadsTo[d]
				pending = append(pending, p)
			}
		}
	}
	e.parents = nil
}

// Build returns the references and what the API says about the target.
func (e *Explainer) Build() (*References, *Usage) {
	if e.leadsTo == nil {
		e.closeOverLists()
	}
	u := &Usage{Target: e.target, Users: e.users, Tags: e.tags}
	slices.SortFunc(u.Users, func(a, b ImageUse) int {
		return cmp.Or(cmp.Compare(a.Image, b.Image), cmp.Compare(a.Role, b.Role))
	})
	slices.SortStableFunc(u.Tags, func(a, b TagPosition) int {
		return cmp.Or(
			cmp.Compare(a.Repository, b.Repository),
			cmp.Compare(a.Tag, b.Tag),
			cmp.Compare(a.Position, b.Position),
		)
	})
	return e.refs.Build(), u
}

// Explanation says what the prune would do with one digest, and why.
type Explanation struct {
	Target digest.Digest
	// Blob is the stored blob, nil when storage has none.
	Blob *Blob
	// Deleted says the prune would delete the blob; Reason is the plan's reason.
	Deleted bool
	Reason  string
	Usage   Usage
	// KeepYoungerThan is the grace period; Young says it holds the blob; Age is the blob's age.
	KeepYoungerThan time.Duration
	Young           bool
	Age             time.Duration
	// Links are the links and tags in storage that name the digest.
	Links []LinkFate
	// FromStorage says a manifest read from storage uses the digest (or is it): one that a
	// list that stays reaches, where the image API could not say what it uses.
	FromStorage bool
}

// LinkFate is what the prune would do with a link or tag naming the explained digest.
type LinkFate struct {
	Kind       Kind // a manifest or layer link, a tag, or a tag index entry
	Repository string
	Tag        string // tags and tag index entries
	Deleted    bool
	// Rule is the reason's code; Reason says it in a sentence.
	Rule   Reason
	Reason string
}

func (l LinkFate) String() string {
	if l.Tag != "" {
		return fmt.Sprintf("%s %s:%s", l.Kind, l.Repository, l.Tag)
	}
	return fmt.Sprintf("%s %s", l.Kind, l.Repository)
}

// Explain tells what the prune, deciding from refs, inv and opts, does with target, and every
// reason it keeps it: Decide runs again and shows each of its decisions about the objects that
// name the target, so an explanation gives the very rule that decided. It is a pure function
// of its arguments.
func Explain(target digest.Digest, usage *Usage, refs *References, inv *Inventory, opts Options) *Explanation {
	cutoff := opts.Now.Add(-opts.KeepYoungerThan)
	exp := &Explanation{
		Target:          target,
		Usage:           *usage,
		KeepYoungerThan: opts.KeepYoungerThan,
		FromStorage:     refs.stored.Has(target),
	}
	for _, b := range inv.Blobs {
		if b.Digest == target {
			exp.Blob = &b
			exp.Young = b.ModTime.After(cutoff)
			exp.Age = opts.Now.Sub(b.ModTime)
			break
		}
	}

	var named []Object // the links and tags naming the target, with their fates
	goneRepos := map[string]Object{}
	decide(refs, inv, opts, func(o Object) {
		switch {
		case o.Kind == KindRepository:
			goneRepos[o.Repository] = o
		case o.Kind == KindBlob:
			if o.Digest == target && !o.Reason.Keeps() {
				exp.Deleted, exp.Reason = true, o.Why()
			}
		case o.Kind != KindUpload && o.Digest == target:
			named = append(named, o)
		}
	})

	order := map[string]int{}
	for i, repo := range inv.Repositories {
		order[repo.Name] = i
		if gone, ok := goneRepos[repo.Name]; ok {
			for _, o := range objectsNaming(&repo, target) {
				exp.Links = append(
					exp.Links,
					LinkFate{Kind: o.Kind, Repository: o.Repository, Tag: o.Name, Deleted: true,
						Rule: gone.Reason, Reason: "its repository goes: " + gone.Why()},
				)
			}
		}
	}
	// Decide sees a repository's tags before its layer links; explanations list the links
	// first, repository by repository, in inventory order.
	slices.SortStableFunc(named, func(a, b Object) int {
		return cmp.Or(
			cmp.Compare(order[a.Repository], order[b.Repository]),
			cmp.Compare(listRank(a.Kind), listRank(b.Kind)),
		)
	})
	for _, o := range named {
		repo := &inv.Repositories[order[o.Repository]]
		lf := LinkFate{
			Kind:       o.Kind,
			Repository: o.Repository,
			Tag:        o.Name,
			Deleted:    !o.Reason.Keeps(),
			Rule:       o.Reason,
			Reason:     o.Why(),
		}
		switch o.Reason {
		case ReasonYoung:
			lf.Reason = "modified " + ageText(opts.Now.Sub(modTime(repo, o))) + ", within the grace period"
		case ReasonFailsClosed:
			lf.Reason = fmt.Sprintf(
				"what image stream %s uses is not fully known (%s), so every link and tag of the repository stays this run",
				repo.Name,
				refs.Repository(repo.Name).unknownWhy(),
			)
		}
		exp.Links = append(exp.Links, lf)
	}
	// Gone repositories were listed first; put every link back in inventory order.
	slices.SortStableFunc(
		exp.Links,
		func(a, b LinkFate) int { return cmp.Compare(order[a.Repository], order[b.Repository]) },
	)
	return exp
}

// listRank orders the objects of one repository in an explanation: manifest links, layer
// links, then tags each followed by its index entries.
func listRank(k Kind) int {
	switch k {
	case KindManifestLink:
		return 0
	case KindLayerLink:
		return 1
	}
	return 2
}

// objectsNaming lists the links and tags of repo that name target, in explanation order.
func objectsNaming(repo *Repository, target digest.Digest) []Object {
	var out []Object
	for _, l := range repo.Manifests {
		if l.Digest == target {
			out = append(out, Object{Kind: KindManifestLink, Repository: repo.Name, Digest: target})
		}
	}
	for _, l := range repo.Layers {
		if l.Digest == target {
			out = append(out, Object{Kind: KindLayerLink, Repository: repo.Name, Digest: target})
		}
	}
	for _, t := range repo.Tags {
		if t.Current == target {
			out = append(out, Object{Kind: KindTag, Repository: repo.Name, Name: t.Name, Digest: target})
		}
		for _, d := range t.Index {
			if d == target && d != t.Current {
				out = append(out, Object{Kind: KindTagIndexEntry, Repository: repo.Name, Name: t.Name, Digest: target})
			}
		}
	}
	return out
}

// modTime is when the link or tag o of repo was last modified.
func modTime(repo *Repository, o Object) time.Time {
	switch o.Kind {
	case KindManifestLink, KindLayerLink:
		links := repo.Manifests
		if o.Kind == KindLayerLink {
			links = repo.Layers
		}
		for _, l := range links {
			if l.Digest == o.Digest {
				return l.ModTime
			}
		}
	case KindTag, KindTagIndexEntry:
		for _, t := range repo.Tags {
			if t.Name == o.Name {
				return t.ModTime
			}
		}
	}
	return time.Time{}
}

// ageText says how long ago something was modified: "3m0s ago", or, for a time after the
// run's start (a clock ahead, or a copy that kept its times), that it is dated in the future.
func ageText(age time.Duration) string {
	if age < 0 {
		return fmt.Sprintf(
			"%s in the future (a date after the run's start, which the grace period keeps)",
			roundAge(-age),
		)
	}
	return roundAge(age).String() + " ago"
}

// roundAge rounds an age for people: to the second, or the minute past an hour.
func roundAge(d time.Duration) time.Duration {
	if d > time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// WriteExplanation writes an explanation for people:
//
//	Blob sha256:... (1.5 KiB) would be kept:
//	  - used by Image sha256:... as layer
//	      ns/app:latest at position 0 out of 2
//	  - the grace period holds it: modified 3m0s ago (-prune-keep-younger-than=1h0m0s)
//	Links naming it:
//	  layer link ns/app: kept: an image of image stream ns/app uses it
func WriteExplanation(w io.Writer, e *Explanation) {
	grace := fmt.Sprintf("-prune-keep-younger-than=%s", e.KeepYoungerThan)
	switch {
	case e.Blob == nil:
		fmt.Fprintf(w, "%s is not stored as a blob: nothing to delete\n", e.Target)
	case e.Deleted:
		fmt.Fprintf(w, "Blob %s (%s) would be deleted: %s\n", e.Target, FormatSize(e.Blob.Size), e.Reason)
		fmt.Fprintf(w, "  the grace period does not hold it: modified %s (%s)\n", ageText(e.Age), grace)
	default:
		fmt.Fprintf(w, "Blob %s (%s) would be kept:\n", e.Target, FormatSize(e.Blob.Size))
	}
	if len(e.Usage.Users) > 0 && e.Blob == nil {
		fmt.Fprintln(w, "Images name it:")
	}
	for _, u := range e.Usage.Users {
		fmt.Fprintf(w, "  - used by Image %s as %s\n", u.Image, u.Role)
		n := 0
		for _, t := range e.Usage.Tags {
			if t.User != u.Image {
				continue
			}
			n++
			via := ""
			if t.Image != t.User {
				via = ", through manifest list " + t.Image.String()
			}
			fmt.Fprintf(w, "      %s:%s at position %d out of %d%s\n", t.Repository, t.Tag, t.Position, t.Total, via)
		}
		if n == 0 {
			fmt.Fprintln(w, "      no image stream tag names it (the Image alone keeps the blob)")
		}
	}
	if e.Blob != nil && !e.Deleted {
		if e.FromStorage {
			fmt.Fprintln(
				w,
				"  - a list that stays reaches a manifest that uses it (or is it), read from storage where the image API could not say",
			)
		}
		if e.Young {
			fmt.Fprintf(w, "  - the grace period holds it: modified %s (%s)\n", ageText(e.Age), grace)
		} else {
			fmt.Fprintf(w, "  the grace period does not hold it: modified %s (%s)\n", ageText(e.Age), grace)
		}
		var staying []string
		for _, l := range e.Links {
			if !l.Deleted && l.Kind != KindTagIndexEntry {
				staying = append(staying, l.String())
			}
		}
		if len(staying) > 0 && len(e.Usage.Users) == 0 {
			fmt.Fprintf(w, "  - links that stay point at it: %d (listed below)\n", len(staying))
		}
	}
	if len(e.Links) == 0 {
		fmt.Fprintln(w, "No link or tag in storage names it")
		return
	}
	fmt.Fprintln(w, "Links naming it:")
	for _, l := range e.Links {
		verdict := "kept"
		if l.Deleted {
			verdict = "would be deleted"
		}
		if l.Reason != "" {
			verdict += ": " + l.Reason
		}
		fmt.Fprintf(w, "  %s: %s\n", l, verdict)
	}
}
