package prune

import (
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	old = now.Add(-48 * time.Hour)
	// fresh is within the default grace period of an hour.
	fresh = now.Add(-10 * time.Minute)
)

func dg(s string) digest.Digest { return digest.FromString(s) }

func blobs(names ...string) []Blob {
	var out []Blob
	for _, n := range names {
		out = append(out, Blob{Digest: dg(n), Size: int64(len(n)), ModTime: old})
	}
	return out
}

func links(names ...string) []Link {
	var out []Link
	for _, n := range names {
		out = append(out, Link{Digest: dg(n), ModTime: old})
	}
	return out
}

func opts() Options {
	return Options{Now: now, KeepYoungerThan: time.Hour, UploadPurgeAge: 168 * time.Hour}
}

// refsOf builds references from images and streams, the way the image API source does.
func refsOf(images []Image, streams []Stream) *References {
	b := NewReferenceBuilder()
	for _, img := range images {
		b.AddImage(img)
	}
	for _, s := range streams {
		b.AddStream(s)
	}
	return b.Build()
}

func img(manifest, config string, layers ...string) Image {
	out := Image{Manifest: dg(manifest)}
	if config != "" {
		out.Config = dg(config)
	}
	for _, l := range layers {
		out.Layers = append(out.Layers, dg(l))
	}
	return out
}

func stream(repo string, manifests ...string) Stream {
	s := Stream{Repository: repo}
	for _, m := range manifests {
		s.Manifests = append(s.Manifests, dg(m))
	}
	return s
}

// planNames renders a plan in names, so that tables read as the scenario they describe.
type planNames struct {
	Repositories    []string // name, "+nested" when only the data directories go
	Tags            []string // repo:tag
	TagIndexEntries []string // repo:tag@name
	ManifestLinks   []string // repo@name
	LayerLinks      []string // repo@name
	Uploads         []string // repo/id
	Blobs           []string // name
	Unresolved      []string // repo:tag
}

func names(p *Plan, all []string) planNames {
	byDigest := map[digest.Digest]string{}
	for _, n := range all {
		byDigest[dg(n)] = n
	}
	name := func(d digest.Digest) string {
		if n, ok := byDigest[d]; ok {
			return n
		}
		return d.String()
	}
	var out planNames
	for _, r := range p.Of(KindRepository) {
		n := r.Repository
		if r.Nested {
			n += "+nested"
		}
		out.Repositories = append(out.Repositories, n)
	}
	for _, t := range p.Of(KindTag) {
		out.Tags = append(out.Tags, t.Repository+":"+t.Name)
	}
	for _, t := range p.Of(KindTagIndexEntry) {
		out.TagIndexEntries = append(out.TagIndexEntries, t.Repository+":"+t.Name+"@"+name(t.Digest))
	}
	for _, l := range p.Of(KindManifestLink) {
		out.ManifestLinks = append(out.ManifestLinks, l.Repository+"@"+name(l.Digest))
	}
	for _, l := range p.Of(KindLayerLink) {
		out.LayerLinks = append(out.LayerLinks, l.Repository+"@"+name(l.Digest))
	}
	for _, u := range p.Of(KindUpload) {
		out.Uploads = append(out.Uploads, u.Repository+"/"+u.Name)
	}
	for _, b := range p.Of(KindBlob) {
		out.Blobs = append(out.Blobs, name(b.Digest))
	}
	for _, t := range p.UnresolvedTags {
		out.Unresolved = append(out.Unresolved, t.Repository+":"+t.Tag)
	}
	return out
}

// sortedNames sorts names the way the plan sorts digests, so expectations can be written in
// any order.
func sortedNames(ns ...string) []string {
	if len(ns) == 0 {
		return nil
	}
	out := append([]string(nil), ns...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if dg(out[j]) < dg(out[i]) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestDecide(t *testing.T) {
	all := []string{"m1", "m2", "m3", "c1", "c2", "c3", "l1", "l2", "l3", "l4", "idx", "orphan", "gone", "young", "x"}
	tests := []struct {
		name    string
		images  []Image
		streams []Stream
		inv     Inventory
		opts    func(*Options)
		want    planNames
	}{
		{
			name: "empty storage, empty image set",
			want: planNames{},
		},
		{
			name:    "empty storage, images in the API",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			want:    planNames{},
		},
		{
			name: "empty image set: every repository and blob is garbage",
			inv: Inventory{
				Blobs:        blobs("m1", "c1", "l1"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1")}},
			},
			want: planNames{Repositories: []string{"ns/app"}, Blobs: sortedNames("m1", "c1", "l1")},
		},
		{
			name:    "everything referenced: nothing goes",
			images:  []Image{img("m1", "c1", "l1", "l2")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "l2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1", "l2"),
					Tags: []Tag{
						{
							Name:    "latest",
							Current: dg("m1"),
							State:   TagRead,
							Index:   []digest.Digest{dg("m1")},
							ModTime: old,
						},
					}}},
			},
			want: planNames{},
		},
		{
			name:    "repository whose image stream is gone goes whole; blobs used by images elsewhere stay",
			images:  []Image{img("m1", "c1", "l1"), img("m2", "c2", "l1", "l2")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2", "c2", "l2"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1")},
					{Name: "ns/gone", Manifests: links("m2"), Layers: links("c2", "l1", "l2")},
				},
			},
			// m2 is still an Image (the ordinary prune has not removed it), so its blobs stay.
			want: planNames{Repositories: []string{"ns/gone"}},
		},
		{
			name: "tag history: every item keeps its manifest; manifests outside the history go with their tags",
			images: []Image{
				img("m1", "c1", "l1"), // newest item
				img("m2", "c2", "l2"), // older item of the same tag
				img("m3", "c3", "l3"), // pushed, then the tag moved on and the history dropped it
			},
			streams: []Stream{stream("ns/app", "m1", "m2")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2", "c2", "l2", "m3", "c3", "l3"),
				Repositories: []Repository{{
					Name: "ns/app", Manifests: links("m1", "m2", "m3"), Layers: links("c1", "l1", "c2", "l2", "c3", "l3"),
					Tags: []Tag{
						{
							Name:    "latest",
							Current: dg("m1"),
							State:   TagRead,
							Index:   []digest.Digest{dg("m1"), dg("m2"), dg("m3")},
							ModTime: old,
						},
						{Name: "v3", Current: dg("m3"), State: TagRead, Index: []digest.Digest{dg("m3")}, ModTime: old},
					},
				}},
			},
			// m3 is still an Image, so its blobs stay in storage; only this repository forgets it.
			want: planNames{
				Tags:            []string{"ns/app:v3"},
				TagIndexEntries: []string{"ns/app:latest@m3"},
				ManifestLinks:   []string{"ns/app@m3"},
				LayerLinks:      sortedLinks("ns/app", "c3", "l3"),
			},
		},
		{
			name: "manifest list: children and their blobs stay while the list is referenced",
			images: []Image{
				{Manifest: dg("idx"), Children: []digest.Digest{dg("m1"), dg("m2")}},
				img("m1", "c1", "l1"),
				img("m2", "c2", "l2"),
			},
			streams: []Stream{stream("ns/multi", "idx")},
			inv: Inventory{
				Blobs: blobs("idx", "m1", "c1", "l1", "m2", "c2", "l2"),
				Repositories: []Repository{
					{Name: "ns/multi", Manifests: links("idx", "m1", "m2"), Layers: links("c1", "l1", "c2", "l2")},
				},
			},
			want: planNames{},
		},
		{
			name: "manifest list removed: its children go from the repository and storage",
			images: []Image{
				img("m3", "c3", "l3"),
			},
			streams: []Stream{stream("ns/multi", "m3")},
			inv: Inventory{
				Blobs: blobs("idx", "m1", "c1", "l1", "m3", "c3", "l3"),
				Repositories: []Repository{
					{Name: "ns/multi", Manifests: links("idx", "m1", "m3"), Layers: links("c1", "l1", "c3", "l3")},
				},
			},
			want: planNames{
				ManifestLinks: sortedLinks("ns/multi", "idx", "m1"),
				LayerLinks:    sortedLinks("ns/multi", "c1", "l1"),
				Blobs:         sortedNames("idx", "m1", "c1", "l1"),
			},
		},
		{
			// m2's Image was removed while the list that names it stays: what m2 uses is not
			// known, so nothing it could use goes from the repository.
			name: "manifest list whose child has no Image: the repository keeps every layer link",
			images: []Image{
				{Manifest: dg("idx"), Children: []digest.Digest{dg("m1"), dg("m2")}},
				img("m1", "c1", "l1"),
			},
			streams: []Stream{stream("ns/multi", "idx")},
			inv: Inventory{
				Blobs: blobs("idx", "m1", "c1", "l1", "m2", "c2", "l2", "old"),
				Repositories: []Repository{
					{
						Name:      "ns/multi",
						Manifests: links("idx", "m1", "m2"),
						Layers:    links("c1", "l1", "c2", "l2", "old"),
					},
				},
			},
			want: planNames{},
		},
		{
			name: "an Image that does not name its config: its repository keeps every layer link",
			images: []Image{
				{Manifest: dg("m1"), Layers: []digest.Digest{dg("l1")}, Incomplete: true},
				img("m2", "c2", "l2"),
			},
			streams: []Stream{stream("ns/app", "m1"), stream("ns/other", "m2")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2", "c2", "l2", "x"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1")},
					{Name: "ns/other", Manifests: links("m2"), Layers: links("c2", "l2", "x")},
				},
			},
			// ns/other is decided as usual.
			want: planNames{LayerLinks: []string{"ns/other@x"}, Blobs: []string{"x"}},
		},
		{
			name: "child of a list referenced in one repository, stored in another too",
			images: []Image{
				{Manifest: dg("idx"), Children: []digest.Digest{dg("m1")}},
				img("m1", "c1", "l1"),
			},
			streams: []Stream{stream("ns/a", "idx"), stream("ns/b", "m2")},
			inv: Inventory{
				Blobs: blobs("idx", "m1", "c1", "l1"),
				Repositories: []Repository{
					{Name: "ns/a", Manifests: links("idx", "m1"), Layers: links("c1", "l1")},
					{Name: "ns/b", Manifests: links("m1"), Layers: links("c1", "l1")},
				},
			},
			// ns/b's stream never named m1: its links go, the blobs stay for ns/a.
			want: planNames{
				ManifestLinks: []string{"ns/b@m1"},
				LayerLinks:    sortedLinks("ns/b", "c1", "l1"),
			},
		},
		{
			name:    "shared layers across repositories: the blob is global, the links are per repository",
			images:  []Image{img("m1", "c1", "l1", "l2"), img("m2", "c2", "l2")},
			streams: []Stream{stream("ns/a", "m1"), stream("ns/b")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "l2", "m2", "c2"),
				Repositories: []Repository{
					{Name: "ns/a", Manifests: links("m1"), Layers: links("c1", "l1", "l2")},
					// a cross-repository mount of l2, and m2 pushed here but no longer tagged
					{Name: "ns/b", Manifests: links("m2"), Layers: links("c2", "l2")},
				},
			},
			want: planNames{
				ManifestLinks: []string{"ns/b@m2"},
				LayerLinks:    sortedLinks("ns/b", "c2", "l2"),
			},
		},
		{
			name:    "config blob is kept through dockerImageMetadata, linked and stored",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs:        blobs("m1", "c1", "l1", "c2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1", "c2")}},
			},
			want: planNames{LayerLinks: []string{"ns/app@c2"}, Blobs: []string{"c2"}},
		},
		{
			name:    "Image deleted by hand while the stream still names it: link and blobs go",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1", "gone")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "gone", "l2"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("m1", "gone"), Layers: links("c1", "l1", "l2")},
				},
			},
			want: planNames{
				ManifestLinks: []string{"ns/app@gone"},
				LayerLinks:    []string{"ns/app@l2"},
				Blobs:         sortedNames("gone", "l2"),
			},
		},
		{
			name:    "half-finished push: layers uploaded, no manifest",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "l2", "l3"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1", "l2")},
					// a new repository whose first push died: only layer links, never a manifest
					{Name: "ns/new", Layers: links("l3")},
				},
			},
			want: planNames{
				Repositories: []string{"ns/new"},
				LayerLinks:   []string{"ns/app@l2"},
				Blobs:        sortedNames("l2", "l3"),
			},
		},
		{
			name:    "nested repository names: a parent with children keeps its directory",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2", "l2"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1")},
					{Name: "ns/app/sub", Manifests: links("m2"), Layers: links("l2")},
					{Name: "ns/x", Manifests: links("m2"), Nested: true},
					{Name: "ns/x/y/z", Layers: links("l1")},
				},
			},
			want: planNames{
				Repositories: []string{"ns/app/sub", "ns/x+nested", "ns/x/y/z"},
				Blobs:        sortedNames("m2", "l2"),
			},
		},
		{
			name:    "grace period: young blobs and links stay, and a young link keeps its blob",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: append(blobs("m1", "c1", "l1", "l2"),
					Blob{Digest: dg("young"), Size: 5, ModTime: fresh}),
				Repositories: []Repository{
					{
						Name:      "ns/app",
						Manifests: links("m1"),
						Layers:    append(links("c1", "l1"), Link{Digest: dg("l2"), ModTime: fresh}),
					},
					// no stream yet, but a push is under way: nothing in it is old enough to go
					{Name: "ns/pushing", Layers: []Link{{Digest: dg("young"), ModTime: fresh}}},
				},
			},
			want: planNames{},
		},
		{
			name:    "grace period zero: the same storage is garbage",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			opts:    func(o *Options) { o.KeepYoungerThan = 0 },
			inv: Inventory{
				Blobs: append(blobs("m1", "c1", "l1", "l2"),
					Blob{Digest: dg("young"), Size: 5, ModTime: fresh}),
				Repositories: []Repository{
					{
						Name:      "ns/app",
						Manifests: links("m1"),
						Layers:    append(links("c1", "l1"), Link{Digest: dg("l2"), ModTime: fresh}),
					},
					{Name: "ns/pushing", Layers: []Link{{Digest: dg("young"), ModTime: fresh}}},
				},
			},
			want: planNames{
				Repositories: []string{"ns/pushing"},
				LayerLinks:   []string{"ns/app@l2"},
				Blobs:        sortedNames("l2", "young"),
			},
		},
		{
			name:    "repository without a stream but with young data: only its old links go",
			images:  []Image{},
			streams: []Stream{},
			opts:    func(o *Options) {},
			inv: Inventory{
				Blobs: append(blobs("l1"), Blob{Digest: dg("young"), ModTime: fresh}),
				Repositories: []Repository{{Name: "ns/pushing", Layers: append(links("l1"),
					Link{Digest: dg("young"), ModTime: fresh})}},
			},
			want: planNames{LayerLinks: []string{"ns/pushing@l1"}, Blobs: []string{"l1"}},
		},
		{
			name:    "young tag keeps the manifest it points at",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{
						{
							Name:    "new",
							Current: dg("m2"),
							State:   TagRead,
							Index:   []digest.Digest{dg("m2")},
							ModTime: fresh,
						},
					}}},
			},
			want: planNames{},
		},
		{
			name:    "tag whose current link is unreadable is left alone",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1"),
					Tags: []Tag{
						{Name: "odd", State: TagRead, Index: []digest.Digest{dg("m1"), dg("x")}, ModTime: old},
					}}},
			},
			// The tag stays; only the index entry of a manifest the repository no longer has goes.
			want: planNames{TagIndexEntries: []string{"ns/app:odd@x"}},
		},
		{
			name:    "current link not read: a tag whose index all stays is kept without a read",
			images:  []Image{img("m1", "c1", "l1"), img("m2", "c2", "l2")},
			streams: []Stream{stream("ns/app", "m1", "m2")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2", "c2", "l2"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1", "c2", "l2"),
						Tags: []Tag{{Name: "latest", Index: []digest.Digest{dg("m1"), dg("m2")}, ModTime: old}}},
				},
			},
			want: planNames{},
		},
		{
			name:    "current link not read: a tag whose index all goes goes, without a read",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "old", Index: []digest.Digest{dg("m2")}, ModTime: old}}}},
			},
			want: planNames{Tags: []string{"ns/app:old"}, ManifestLinks: []string{"ns/app@m2"}, Blobs: []string{"m2"}},
		},
		{
			name:    "current link not read: a tag whose index is mixed waits to be read, and is untouched",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "latest", Index: []digest.Digest{dg("m1"), dg("m2")}, ModTime: old}}}},
			},
			want: planNames{
				ManifestLinks: []string{"ns/app@m2"},
				Blobs:         []string{"m2"},
				Unresolved:    []string{"ns/app:latest"},
			},
		},
		{
			name:    "current link not read, mixed index, the times name a current that stays: no read",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "latest", Index: []digest.Digest{dg("m2"), dg("m1")}, ModTime: old,
						IndexModTimes: []time.Time{
							old.Add(-time.Hour),
							old.Add(-time.Millisecond),
						}, CurrentModTime: old}}}},
			},
			want: planNames{
				TagIndexEntries: []string{"ns/app:latest@m2"},
				ManifestLinks:   []string{"ns/app@m2"},
				Blobs:           []string{"m2"},
			},
		},
		{
			name:    "current link not read, mixed index, the times name a current that goes: read first",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "latest", Index: []digest.Digest{dg("m1"), dg("m2")}, ModTime: old,
						IndexModTimes: []time.Time{
							old.Add(-time.Hour),
							old.Add(-time.Millisecond),
						}, CurrentModTime: old}}}},
			},
			want: planNames{
				ManifestLinks: []string{"ns/app@m2"},
				Blobs:         []string{"m2"},
				Unresolved:    []string{"ns/app:latest"},
			},
		},
		{
			name:    "current link not read, mixed index, an interrupted tagging (current older than the newest entry): read first",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "latest", Index: []digest.Digest{dg("m2"), dg("m1")}, ModTime: old,
						IndexModTimes: []time.Time{old.Add(-time.Hour), old}, CurrentModTime: old.Add(-time.Hour)}}}},
			},
			want: planNames{
				ManifestLinks: []string{"ns/app@m2"},
				Blobs:         []string{"m2"},
				Unresolved:    []string{"ns/app:latest"},
			},
		},
		{
			name:    "current link not read, mixed index, two newest entries tie: read first",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "latest", Index: []digest.Digest{dg("m2"), dg("m1")}, ModTime: old,
						IndexModTimes: []time.Time{old, old}, CurrentModTime: old}}}},
			},
			want: planNames{
				ManifestLinks: []string{"ns/app@m2"},
				Blobs:         []string{"m2"},
				Unresolved:    []string{"ns/app:latest"},
			},
		},
		{
			name:    "current link not read, young tag: its whole index stays",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "latest", Index: []digest.Digest{dg("m1"), dg("m2")}, ModTime: fresh}}}},
			},
			want: planNames{},
		},
		{
			// What a tag deletion killed between its index and its current link leaves: an
			// empty index says nothing about what the tag points at.
			name:    "current link not read, the index empty: read first",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "t0", ModTime: old, CurrentModTime: old}}}},
			},
			want: planNames{
				ManifestLinks: []string{"ns/app@m2"},
				Blobs:         []string{"m2"},
				Unresolved:    []string{"ns/app:t0"},
			},
		},
		{
			name:    "read: the current link names a manifest that goes, the index empty: the tag goes",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "m2"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "t0", Current: dg("m2"), State: TagRead, ModTime: old, CurrentModTime: old}}}},
			},
			want: planNames{Tags: []string{"ns/app:t0"}, ManifestLinks: []string{"ns/app@m2"}, Blobs: []string{"m2"}},
		},
		{
			name:    "current link not listed, the index all stays: read first",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1"),
					Tags: []Tag{{Name: "t0", State: TagUnlisted, Index: []digest.Digest{dg("m1")}, ModTime: old}}}},
			},
			want: planNames{Unresolved: []string{"ns/app:t0"}},
		},
		{
			name:    "read: no current link, the remains of a tag go",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1"),
					Tags: []Tag{
						{Name: "t0", State: TagNoCurrentLink, Index: []digest.Digest{dg("m1")}, ModTime: old},
					}}},
			},
			want: planNames{Tags: []string{"ns/app:t0"}},
		},
		{
			name:    "no current link but young: an interrupted tagging may be under way, the tag stays",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1"),
					Tags: []Tag{
						{Name: "t0", State: TagNoCurrentLink, Index: []digest.Digest{dg("m1")}, ModTime: fresh},
					}}},
			},
			want: planNames{},
		},
		{
			// A push just before read-only reused layer l9 and config c9 of an Image deleted
			// earlier: it uploaded nothing, so only its manifest is young, and its Image was
			// created after the API was read.
			name:    "a young manifest no stream names keeps the old links of its repository, and their blobs",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: append(blobs("m1", "c1", "l1", "c9", "l9"), Blob{Digest: dg("m9"), ModTime: fresh}),
				Repositories: []Repository{
					{
						Name:      "ns/app",
						Manifests: append(links("m1"), Link{Digest: dg("m9"), ModTime: fresh}),
						Layers:    links("c1", "l1", "c9", "l9"),
					},
					// Another repository is decided as usual.
					{Name: "ns/other", Manifests: links("m1"), Layers: links("c1", "l1", "l9")},
				},
			},
			want: planNames{Repositories: []string{"ns/other"}},
		},
		{
			name:    "a young tag, not read, keeps the manifest blobs its index names, even without revision links",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1", "m2"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1"),
					Tags: []Tag{
						{Name: "new", Index: []digest.Digest{dg("m2")}, ModTime: fresh, CurrentModTime: fresh},
					}}},
			},
			want: planNames{},
		},
		{
			name:    "stale uploads go after the purge age, recent ones stay",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1")},
			inv: Inventory{
				Blobs: blobs("m1", "c1", "l1"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1"),
					Uploads: []Upload{
						{ID: "stale", Size: 10, ModTime: now.Add(-200 * time.Hour)},
						{ID: "recent", Size: 10, ModTime: old},
					}}},
			},
			want: planNames{Uploads: []string{"ns/app/stale"}},
		},
		{
			name:    "stream references a digest whose Image is gone and whose blob is missing",
			images:  []Image{img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "m1", "gone")},
			inv: Inventory{
				Blobs:        blobs("m1", "c1", "l1"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1", "gone"), Layers: links("c1", "l1")}},
			},
			want: planNames{ManifestLinks: []string{"ns/app@gone"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts()
			if tt.opts != nil {
				tt.opts(&o)
			}
			plan := Decide(refsOf(tt.images, tt.streams), &tt.inv, o)
			got := names(plan, all)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n got %+v\nwant %+v", got, tt.want)
			}
			checkInvariant(t, &tt.inv, plan)
		})
	}
}

func sortedLinks(repo string, ns ...string) []string {
	var out []string
	for _, n := range sortedNames(ns...) {
		out = append(out, repo+"@"+n)
	}
	return out
}

// checkInvariant asserts what the sweep relies on: no link that stays points at a blob that goes.
func checkInvariant(t *testing.T, inv *Inventory, plan *Plan) {
	t.Helper()
	goneBlobs := map[digest.Digest]bool{}
	for _, b := range plan.Of(KindBlob) {
		goneBlobs[b.Digest] = true
	}
	goneRepos := map[string]bool{}
	for _, r := range plan.Of(KindRepository) {
		goneRepos[r.Repository] = true
	}
	goneLinks := map[string]bool{}
	for _, l := range plan.Of(KindManifestLink) {
		goneLinks["m "+l.Repository+"@"+l.Digest.String()] = true
	}
	for _, l := range plan.Of(KindLayerLink) {
		goneLinks["l "+l.Repository+"@"+l.Digest.String()] = true
	}
	goneTags := map[string]bool{}
	for _, tg := range plan.Of(KindTag) {
		goneTags[tg.Repository+":"+tg.Name] = true
	}
	for _, r := range inv.Repositories {
		if goneRepos[r.Name] {
			continue
		}
		for _, l := range r.Manifests {
			if !goneLinks["m "+r.Name+"@"+l.Digest.String()] && goneBlobs[l.Digest] {
				t.Errorf("manifest link %s@%s stays but its blob goes", r.Name, l.Digest)
			}
		}
		for _, l := range r.Layers {
			if !goneLinks["l "+r.Name+"@"+l.Digest.String()] && goneBlobs[l.Digest] {
				t.Errorf("layer link %s@%s stays but its blob goes", r.Name, l.Digest)
			}
		}
		for _, tg := range r.Tags {
			if !goneTags[r.Name+":"+tg.Name] && tg.Current != "" && goneLinks["m "+r.Name+"@"+tg.Current.String()] {
				t.Errorf("tag %s:%s stays but its manifest link goes", r.Name, tg.Name)
			}
		}
	}
}
