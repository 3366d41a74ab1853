package prune

import (
	"fmt"
	"io"
	"sort"
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
				e.tags = append(e.tags, TagPosition{Repository: s.Repository, Tag: t.Tag, Position: i, Total: len(t.Items), Image: item.Image, User: user})
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
	sort.Slice(u.Users, func(i, j int) bool {
		a, b := u.Users[i], u.Users[j]
		return a.Image < b.Image || a.Image == b.Image && a.Role < b.Role
	})
	sort.SliceStable(u.Tags, func(i, j int) bool {
		a, b := u.Tags[i], u.Tags[j]
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		if a.Tag != b.Tag {
			return a.Tag < b.Tag
		}
		return a.Position < b.Position
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
	Kind       string // "manifest link", "layer link", "tag", "tag index entry"
	Repository string
	Tag        string // tags and tag index entries
	Deleted    bool
	Reason     string
}

func (l LinkFate) String() string {
	if l.Tag != "" {
		return fmt.Sprintf("%s %s:%s", l.Kind, l.Repository, l.Tag)
	}
	return fmt.Sprintf("%s %s", l.Kind, l.Repository)
}

// Explain tells what plan, decided from refs, inv and opts, does with target, and every reason
// it keeps it. It is a pure function of its arguments.
func Explain(target digest.Digest, usage *Usage, refs *References, inv *Inventory, plan *Plan, opts Options) *Explanation {
	cutoff := opts.Now.Add(-opts.KeepYoungerThan)
	young := func(t time.Time) bool { return t.After(cutoff) }
	exp := &Explanation{Target: target, Usage: *usage, KeepYoungerThan: opts.KeepYoungerThan, FromStorage: refs.stored.Has(target)}

	for _, b := range inv.Blobs {
		if b.Digest == target {
			exp.Blob = &b
			exp.Young = young(b.ModTime)
			exp.Age = opts.Now.Sub(b.ModTime)
			break
		}
	}
	for _, b := range plan.Blobs {
		if b.Digest == target {
			exp.Deleted, exp.Reason = true, b.Reason
		}
	}

	goneRepos := map[string]string{}
	for _, r := range plan.Repositories {
		goneRepos[r.Name] = r.Reason
	}
	planned := map[string]string{} // kind + repository + tag -> reason
	key := func(kind, repo, tag string) string { return kind + "\x00" + repo + "\x00" + tag }
	for _, l := range plan.ManifestLinks {
		if l.Digest == target {
			planned[key("manifest link", l.Repository, "")] = l.Reason
		}
	}
	for _, l := range plan.LayerLinks {
		if l.Digest == target {
			planned[key("layer link", l.Repository, "")] = l.Reason
		}
	}
	for _, t := range plan.Tags {
		if t.Manifest == target {
			planned[key("tag", t.Repository, t.Tag)] = t.Reason
		}
	}
	for _, t := range plan.TagIndexEntries {
		if t.Digest == target {
			planned[key("tag index entry", t.Repository, t.Tag)] = "its manifest link goes"
		}
	}

	for ri := range inv.Repositories {
		repo := &inv.Repositories[ri]
		rr := refs.Repository(repo.Name)
		fate := func(kind, tag string, modTime time.Time, keptWhy func() string) {
			lf := LinkFate{Kind: kind, Repository: repo.Name, Tag: tag}
			if why, ok := goneRepos[repo.Name]; ok {
				lf.Deleted, lf.Reason = true, "its repository goes: "+why
			} else if why, ok := planned[key(kind, repo.Name, tag)]; ok {
				lf.Deleted, lf.Reason = true, why
			} else {
				lf.Reason = keptWhy()
			}
			exp.Links = append(exp.Links, lf)
		}
		graceWhy := func(t time.Time) string {
			if young(t) {
				return "modified " + ageText(opts.Now.Sub(t)) + ", within the grace period"
			}
			return ""
		}
		closedWhy := ""
		if rr.failsClosed() {
			closedWhy = fmt.Sprintf("what image stream %s uses is not fully known (%s), so every link and tag of the repository stays this run", repo.Name, rr.unknownWhy())
		}
		_, holdsYoung := youngHolds(repo, rr, refs, young)
		const youngManifestWhy = "the repository holds a manifest pushed within the grace period that no image stream names yet; what it uses is not known, so every link of the repository stays this run"
		for _, l := range repo.Manifests {
			if l.Digest != target {
				continue
			}
			fate("manifest link", "", l.ModTime, func() string {
				if closedWhy != "" {
					return closedWhy
				}
				if refs.streamKeepsManifest(rr, target) {
					return fmt.Sprintf("the tag history of image stream %s names it", repo.Name)
				}
				if why := graceWhy(l.ModTime); why != "" {
					return why
				}
				if holdsYoung {
					return youngManifestWhy
				}
				return "a tag modified within the grace period points at it"
			})
		}
		for _, l := range repo.Layers {
			if l.Digest != target {
				continue
			}
			fate("layer link", "", l.ModTime, func() string {
				if closedWhy != "" {
					return closedWhy
				}
				if refs.streamKeepsLayer(rr, target) {
					return fmt.Sprintf("an image of image stream %s uses it", repo.Name)
				}
				if why := graceWhy(l.ModTime); why != "" {
					return why
				}
				if holdsYoung {
					return youngManifestWhy
				}
				return ""
			})
		}
		for _, t := range repo.Tags {
			if t.Current == target {
				fate("tag", t.Name, t.ModTime, func() string {
					if closedWhy != "" {
						return closedWhy
					}
					if why := graceWhy(t.ModTime); why != "" {
						return why
					}
					return "the manifest link it points at stays"
				})
			}
			for _, d := range t.Index {
				if d == target && d != t.Current {
					fate("tag index entry", t.Name, t.ModTime, func() string {
						if closedWhy != "" {
							return closedWhy
						}
						if why := graceWhy(t.ModTime); why != "" {
							return why
						}
						return "the manifest link it names stays"
					})
				}
			}
		}
	}
	return exp
}

// ageText says how long ago something was modified: "3m0s ago", or, for a time after the
// run's start (a clock ahead, or a copy that kept its times), that it is dated in the future.
func ageText(age time.Duration) string {
	if age < 0 {
		return fmt.Sprintf("%s in the future (a date after the run's start, which the grace period keeps)", roundAge(-age))
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
			fmt.Fprintln(w, "  - a list that stays reaches a manifest that uses it (or is it), read from storage where the image API could not say")
		}
		if e.Young {
			fmt.Fprintf(w, "  - the grace period holds it: modified %s (%s)\n", ageText(e.Age), grace)
		} else {
			fmt.Fprintf(w, "  the grace period does not hold it: modified %s (%s)\n", ageText(e.Age), grace)
		}
		var staying []string
		for _, l := range e.Links {
			if !l.Deleted && l.Kind != "tag index entry" {
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
