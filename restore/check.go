// Package restore is the fsck of the registry: it finds what storage and the image API disagree
// on in the direction the prune does not handle (Images whose data storage lost), and what
// storage holds that the API does not know, and recovers the latter into the image API.
package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

// LostFoundPrefix starts the tags under which -restore=recover records what it recovers. The
// tag is the prefix and the digest's hex: a colon is not allowed in a tag.
const LostFoundPrefix = "lost-found-"

// LostFoundTag is the tag a recovered manifest is recorded under.
func LostFoundTag(d digest.Digest) string {
	return LostFoundPrefix + d.Encoded()
}

// Missing is a blob an Image needs that storage lacks.
type Missing struct {
	Digest digest.Digest
	Role   string // prune.RoleManifest, RoleConfig, RoleLayer or RoleChild
}

// BrokenImage is an Image of this registry whose manifest or blobs storage lacks.
type BrokenImage struct {
	Image   digest.Digest
	Missing []Missing
}

// TagProblem is a tag history item naming an Image that is broken or does not exist.
type TagProblem struct {
	Repository, Tag string
	Position, Total int
	Image           digest.Digest
	// NoImage says the Image does not exist (else it is broken). Recoverable says storage
	// holds the manifest in the repository, so -restore=recover creates the Image.
	NoImage, Recoverable bool
	// Reaches, when set, is a manifest that the list the item names reaches (at any depth)
	// and that cannot be pulled: Why says why (storage lacks it, the repository does not link
	// it, or it cannot be read).
	Reaches digest.Digest
	Why     string
}

// Manifest is a manifest link of a repository in storage.
type Manifest struct {
	Repository string
	Digest     digest.Digest
}

// Recovery is what -restore=recover does for one stored manifest.
type Recovery struct {
	Manifest
	// CreateImage says the Image does not exist; Tag says no tag of the repository's image
	// stream names the manifest, so it is recorded under LostFoundTag (unless it turns out to
	// be a child of a recovered manifest list, which the list's tag keeps).
	CreateImage, Tag bool
}

// Report is what a check found.
type Report struct {
	Images, Streams, Repositories int

	BrokenImages []BrokenImage
	TagProblems  []TagProblem
	// UnknownRepositories have no image stream; Unadoptable lists those -restore=recover
	// cannot record (a name that is not <namespace>/<name>, or no manifest to record).
	UnknownRepositories []string
	Unadoptable         map[string]string
	// UnknownManifests are stored manifests with no Image, or in a repository with no stream.
	UnknownManifests []Recovery
	// DanglingLinks are manifest links whose blob storage lacks.
	DanglingLinks []Manifest
}

// Recoverable is what -restore=recover does.
func (r *Report) Recoverable() []Recovery {
	var out []Recovery
	for _, m := range r.UnknownManifests {
		if _, bad := r.Unadoptable[m.Repository]; !bad && (m.CreateImage || m.Tag) {
			out = append(out, m)
		}
	}
	return out
}

// Problems counts what the check found.
func (r *Report) Problems() int {
	return len(
		r.BrokenImages,
	) + len(
		r.TagProblems,
	) + len(
		r.UnknownRepositories,
	) + len(
		r.UnknownManifests,
	) + len(
		r.DanglingLinks,
	)
}

// Unrecoverable counts the problems -restore=recover leaves: lost blobs cannot come back.
func (r *Report) Unrecoverable() int {
	n := len(r.BrokenImages) + len(r.DanglingLinks) + len(r.Unadoptable)
	for _, t := range r.TagProblems {
		if !t.Recoverable {
			n++
		}
	}
	for _, m := range r.UnknownManifests {
		if _, bad := r.Unadoptable[m.Repository]; bad {
			n++
		}
	}
	return n
}

// Checker compares the image API with a storage inventory. Feed it every Image, then every
// image stream, then call Report. Only digest sets and the findings are kept, so it scales
// with the inventory, not with the Images' size.
type Checker struct {
	inv      *prune.Inventory
	repos    map[string]*prune.Repository
	images   *prune.DigestSet
	children *prune.DigestSet
	broken   map[digest.Digest]bool
	// named maps a repository with an image stream to the manifests its tags name.
	named map[string]*prune.DigestSet
	// lists maps the Images that are manifest lists to their children; listItems are the tag
	// history items naming one, which FollowLists walks down.
	lists     map[digest.Digest][]digest.Digest
	listItems []TagProblem
	report    Report
}

// NewChecker starts a check against inv. Its blobs are sorted by digest (the storage
// inventory returns them so; others are sorted in place).
func NewChecker(inv *prune.Inventory) *Checker {
	byDigest := func(a, b prune.Blob) int { return cmp.Compare(a.Digest, b.Digest) }
	if !slices.IsSortedFunc(inv.Blobs, byDigest) {
		slices.SortFunc(inv.Blobs, byDigest)
	}
	c := &Checker{
		inv:      inv,
		repos:    map[string]*prune.Repository{},
		images:   prune.NewDigestSet(),
		children: prune.NewDigestSet(),
		broken:   map[digest.Digest]bool{},
		named:    map[string]*prune.DigestSet{},
		lists:    map[digest.Digest][]digest.Digest{},
		report:   Report{Unadoptable: map[string]string{}},
	}
	for i := range inv.Repositories {
		c.repos[inv.Repositories[i].Name] = &inv.Repositories[i]
	}
	return c
}

func (c *Checker) stored(d digest.Digest) bool {
	i := sort.Search(len(c.inv.Blobs), func(i int) bool { return c.inv.Blobs[i].Digest >= d })
	return i < len(c.inv.Blobs) && c.inv.Blobs[i].Digest == d
}

// linked tells whether repo holds a manifest link to d whose blob is stored.
func (c *Checker) linked(repo string, d digest.Digest) bool {
	r := c.repos[repo]
	if r == nil || !c.stored(d) {
		return false
	}
	for _, l := range r.Manifests {
		if l.Digest == d {
			return true
		}
	}
	return false
}

// AddImage checks an Image. managed says this registry stores it; Images imported from other
// registries have no data here, and are only recorded as existing.
func (c *Checker) AddImage(img prune.Image, managed bool) {
	c.report.Images++
	c.images.Add(img.Manifest)
	for _, ch := range img.Children {
		c.children.Add(ch)
	}
	if len(img.Children) > 0 {
		c.lists[img.Manifest] = img.Children
	}
	if !managed {
		return
	}
	var missing []Missing
	need := func(d digest.Digest, role string) {
		if d != "" && !c.stored(d) {
			missing = append(missing, Missing{Digest: d, Role: role})
		}
	}
	need(img.Manifest, prune.RoleManifest)
	need(img.Config, prune.RoleConfig)
	for _, l := range img.Layers {
		need(l, prune.RoleLayer)
	}
	for _, ch := range img.Children {
		need(ch, prune.RoleChild)
	}
	if len(missing) > 0 {
		c.broken[img.Manifest] = true
		c.report.BrokenImages = append(c.report.BrokenImages, BrokenImage{Image: img.Manifest, Missing: missing})
	}
}

// AddStream checks the tag histories of an image stream. local says whether a history item's
// dockerImageReference names this registry (used for items whose Image does not exist).
func (c *Checker) AddStream(s prune.StreamTags, local func(reference string) bool) {
	c.report.Streams++
	named := c.named[s.Repository]
	if named == nil {
		named = prune.NewDigestSet()
		c.named[s.Repository] = named
	}
	for _, t := range s.Tags {
		for i, item := range t.Items {
			named.Add(item.Image)
			p := TagProblem{Repository: s.Repository, Tag: t.Tag, Position: i, Total: len(t.Items), Image: item.Image}
			switch {
			case c.broken[item.Image]:
				c.report.TagProblems = append(c.report.TagProblems, p)
			case c.lists[item.Image] != nil:
				c.listItems = append(c.listItems, p)
			case !c.images.Has(item.Image):
				p.NoImage = true
				p.Recoverable = c.linked(s.Repository, item.Image)
				if p.Recoverable || local(item.Reference) {
					c.report.TagProblems = append(c.report.TagProblems, p)
				}
			}
		}
	}
}

// FollowLists walks down every manifest list that a tag history item names, at any depth, and
// reports the items whose list reaches a manifest that cannot be pulled: storage lacks it, the
// repository does not link it (when it links the list), or it cannot be read. Where a level
// has no Image, its manifest is read from storage through reader. Call it after the last
// AddStream; a storage error other than a missing or unreadable manifest is returned.
func (c *Checker) FollowLists(ctx context.Context, reader prune.ManifestReader) error {
	read := map[digest.Digest][]digest.Digest{}
	unreadable := map[digest.Digest]string{}
	children := func(d digest.Digest) ([]digest.Digest, string, error) {
		if ch, ok := c.lists[d]; ok {
			return ch, "", nil
		}
		if c.images.Has(d) {
			return nil, "", nil // an image: what it uses AddImage checked
		}
		if why, ok := unreadable[d]; ok {
			return nil, why, nil
		}
		if ch, ok := read[d]; ok {
			return ch, "", nil
		}
		img, err := reader.ReadManifest(ctx, d)
		switch {
		case errors.Is(err, prune.ErrManifestNotStored), errors.Is(err, prune.ErrManifestUnreadable):
			unreadable[d] = fmt.Sprintf("it has no Image and storage cannot read it (%v)", err)
			return nil, unreadable[d], nil
		case err != nil:
			return nil, "", fmt.Errorf("reading manifest %s: %w", d, err)
		}
		// What the Image would have said, storage says: its blobs must be there too.
		for _, b := range append([]digest.Digest{img.Config}, img.Layers...) {
			if b != "" && !c.stored(b) {
				unreadable[d] = fmt.Sprintf("it has no Image, and storage lacks blob %s it uses", b)
				return nil, unreadable[d], nil
			}
		}
		read[d] = img.Children
		return img.Children, "", nil
	}
	for _, p := range c.listItems {
		checkLinks := c.linked(p.Repository, p.Image)
		seen := map[digest.Digest]bool{p.Image: true}
		pending := []digest.Digest{p.Image}
	walk:
		for len(pending) > 0 {
			d := pending[len(pending)-1]
			pending = pending[:len(pending)-1]
			why := ""
			switch {
			case d != p.Image && !c.stored(d):
				why = "storage lacks it"
			case d != p.Image && checkLinks && !c.linked(p.Repository, d):
				why = fmt.Sprintf("repository %s does not link it", p.Repository)
			case c.broken[d]:
				why = "its Image is broken"
			}
			var ch []digest.Digest
			if why == "" {
				var err error
				if ch, why, err = children(d); err != nil {
					return err
				}
			}
			if why != "" {
				p.Reaches, p.Why = d, why
				c.report.TagProblems = append(c.report.TagProblems, p)
				break walk
			}
			for _, x := range ch {
				if !seen[x] {
					seen[x] = true
					pending = append(pending, x)
				}
			}
		}
	}
	c.listItems = nil
	return nil
}

// Report compares the repositories in storage with what the API knows, and returns the findings.
func (c *Checker) Report() *Report {
	r := &c.report
	r.Repositories = len(c.inv.Repositories)
	for i := range c.inv.Repositories {
		repo := &c.inv.Repositories[i]
		named, hasStream := c.named[repo.Name]
		if !hasStream {
			r.UnknownRepositories = append(r.UnknownRepositories, repo.Name)
			if repo.InvalidName {
				r.Unadoptable[repo.Name] = "the name is not a valid repository name, so no image stream can hold it"
			} else if ns, name, ok := strings.Cut(repo.Name, "/"); !ok || ns == "" || strings.Contains(name, "/") {
				r.Unadoptable[repo.Name] = "the name is not <namespace>/<name>, so no image stream can hold it"
			}
		}
		adoptable := false
		for _, l := range repo.Manifests {
			if !c.stored(l.Digest) {
				r.DanglingLinks = append(r.DanglingLinks, Manifest{Repository: repo.Name, Digest: l.Digest})
				continue
			}
			rec := Recovery{
				Manifest:    Manifest{Repository: repo.Name, Digest: l.Digest},
				CreateImage: !c.images.Has(l.Digest),
			}
			rec.Tag = !named.Has(l.Digest) && !c.children.Has(l.Digest)
			if rec.CreateImage || !hasStream {
				adoptable = true
				r.UnknownManifests = append(r.UnknownManifests, rec)
			}
		}
		if !hasStream && !adoptable {
			if _, bad := r.Unadoptable[repo.Name]; !bad {
				r.Unadoptable[repo.Name] = "no stored manifest to record"
			}
		}
	}
	return r
}

// WriteReport writes the findings, one a line, then the counts:
//
//	Broken image sha256:...: blob sha256:... missing (layer)
//	Broken tag ns/app:latest at position 0 out of 2: image sha256:... is broken
//	Missing image ns/app:v1 at position 0 out of 1: Image sha256:... does not exist (recoverable)
//	Unknown repository ns/old: no image stream
//	Unknown manifest ns/app@sha256:...: no Image (recoverable)
//	Dangling manifest link ns/app@sha256:...: blob missing
func WriteReport(w io.Writer, r *Report) {
	recoverable := func(ok bool) string {
		if ok {
			return " (recoverable)"
		}
		return ""
	}
	for _, b := range r.BrokenImages {
		for _, m := range b.Missing {
			fmt.Fprintf(w, "Broken image %s: blob %s missing (%s)\n", b.Image, m.Digest, m.Role)
		}
	}
	for _, t := range r.TagProblems {
		if t.Reaches != "" {
			fmt.Fprintf(
				w,
				"Broken tag %s:%s at position %d out of %d: list %s reaches manifest %s, but %s\n",
				t.Repository,
				t.Tag,
				t.Position,
				t.Total,
				t.Image,
				t.Reaches,
				t.Why,
			)
			continue
		}
		if t.NoImage {
			fmt.Fprintf(
				w,
				"Missing image %s:%s at position %d out of %d: Image %s does not exist%s\n",
				t.Repository,
				t.Tag,
				t.Position,
				t.Total,
				t.Image,
				recoverable(t.Recoverable),
			)
		} else {
			fmt.Fprintf(w, "Broken tag %s:%s at position %d out of %d: image %s is broken\n", t.Repository, t.Tag, t.Position, t.Total, t.Image)
		}
	}
	for _, repo := range r.UnknownRepositories {
		why := ""
		if bad, ok := r.Unadoptable[repo]; ok {
			why = " (not recoverable: " + bad + ")"
		}
		fmt.Fprintf(w, "Unknown repository %s: no image stream%s\n", repo, why)
	}
	for _, m := range r.UnknownManifests {
		_, bad := r.Unadoptable[m.Repository]
		what := "no Image"
		if !m.CreateImage {
			what = "no image stream"
		}
		fmt.Fprintf(w, "Unknown manifest %s@%s: %s%s\n", m.Repository, m.Digest, what, recoverable(!bad))
	}
	for _, l := range r.DanglingLinks {
		fmt.Fprintf(w, "Dangling manifest link %s@%s: blob missing\n", l.Repository, l.Digest)
	}
	if r.Problems() == 0 {
		fmt.Fprintf(
			w,
			"Consistent: %d images, %d image streams, %d repositories\n",
			r.Images,
			r.Streams,
			r.Repositories,
		)
		return
	}
	fmt.Fprintf(
		w,
		"Found %d broken images, %d tag history items naming broken or missing images, %d unknown repositories, %d unknown manifests, %d dangling manifest links\n",
		len(
			r.BrokenImages,
		),
		len(r.TagProblems),
		len(r.UnknownRepositories),
		len(r.UnknownManifests),
		len(r.DanglingLinks),
	)
}
