package ordinary

import (
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
)

// plain are Images without blobs, so that the rule tables below see only manifest links.
var plain = imageSet(img("m0", ""), img("m1", ""), img("m2", ""), img("m3", ""), img("m4", ""), img("m5", ""))

func TestDecideStream(t *testing.T) {
	type want struct {
		items         []string
		removed       int
		emptyTags     []string
		layerLinks    []string
		manifestLinks []string
	}
	latest := func(images ...string) *Stream { return stream("ns", "app", tagOf("latest", images...)) }
	namespaced := keep(1)
	namespaced.Namespace = "ns"
	sizes := imageSet(sized(img("s50", ""), 50), sized(img("s100", ""), 100), sized(img("s101", ""), 101))
	for _, tc := range []struct {
		name   string
		stream *Stream
		images map[digest.Digest]*Image
		refs   *Referrers
		limits Limits
		opts   Options
		want   want
	}{
		// -keep-tag-revisions.
		{
			name: "keep-tag-revisions=3 keeps the three newest revisions", stream: latest("m4", "m3", "m2", "m1"),
			images: plain, opts: keep(3),
			want: want{
				items: []string{
					"latest 0/4 m4 within-revisions", "latest 1/4 m3 within-revisions",
					"latest 2/4 m2 within-revisions", "latest 3/4 m1 old-revision",
				},
				removed: 1, manifestLinks: []string{"m1"},
			},
		},
		{
			name: "keep-tag-revisions=1 keeps the current revision", stream: latest("m4", "m3", "m2", "m1"),
			images: plain, opts: keep(1),
			want: want{
				items: []string{
					"latest 0/4 m4 within-revisions", "latest 1/4 m3 old-revision",
					"latest 2/4 m2 old-revision", "latest 3/4 m1 old-revision",
				},
				removed: 3, manifestLinks: []string{"m1", "m2", "m3"},
			},
		},
		{
			name: "keep-tag-revisions=0 keeps nothing for its revision", stream: latest("m4", "m3", "m2", "m1"),
			images: plain, opts: keep(0),
			want: want{
				items: []string{
					"latest 0/4 m4 old-revision", "latest 1/4 m3 old-revision",
					"latest 2/4 m2 old-revision", "latest 3/4 m1 old-revision",
				},
				removed: 4, emptyTags: []string{"latest"}, manifestLinks: []string{"m1", "m2", "m3", "m4"},
			},
		},
		{
			name: "revisions count per tag", images: plain, opts: keep(1),
			stream: stream("ns", "app", tagOf("a", "m1", "m2"), tagOf("b", "m3", "m4")),
			want: want{
				items:   []string{"a 0/2 m1 within-revisions", "a 1/2 m2 old-revision", "b 0/2 m3 within-revisions", "b 1/2 m4 old-revision"},
				removed: 2, manifestLinks: []string{"m2", "m4"},
			},
		},

		// The age.
		{
			name: "a young stream keeps every item, even with keep-tag-revisions=0", images: plain, opts: keep(0),
			stream: &Stream{Namespace: "ns", Name: "app", Created: fresh, Tags: []Tag{tagOf("latest", "m2", "m1", "gone")}},
			want: want{items: []string{
				"latest 0/3 m2 young-stream", "latest 1/3 m1 young-stream", "latest 2/3 gone young-stream",
			}},
		},
		{
			name: "a stream created exactly at the cutoff is old", images: plain, opts: keep(0),
			stream: &Stream{Namespace: "ns", Name: "app", Created: cutoff, Tags: []Tag{tagOf("latest", "m1")}},
			want: want{
				items: []string{"latest 0/1 m1 old-revision"}, removed: 1, emptyTags: []string{"latest"}, manifestLinks: []string{"m1"},
			},
		},
		{
			name: "a young item stays at any revision", images: plain, opts: keep(1),
			stream: stream("ns", "app", tag("latest", item("m3"), itemAt("m2", fresh), item("m1"))),
			want: want{
				items:   []string{"latest 0/3 m3 within-revisions", "latest 1/3 m2 young", "latest 2/3 m1 old-revision"},
				removed: 1, manifestLinks: []string{"m1"},
			},
		},
		{
			name: "a young item stays even when its Image is missing", images: plain, opts: keep(0),
			stream: stream("ns", "app", tag("latest", itemAt("gone", fresh))),
			want:   want{items: []string{"latest 0/1 gone young"}},
		},
		{
			name: "an item created exactly at the cutoff is old", images: plain, opts: keep(0),
			stream: stream("ns", "app", tag("latest", itemAt("m1", cutoff))),
			want: want{
				items: []string{"latest 0/1 m1 old-revision"}, removed: 1, emptyTags: []string{"latest"}, manifestLinks: []string{"m1"},
			},
		},

		// Tags in use.
		{
			name: "a used tag protects its revision 0 only", images: plain, opts: keep(0),
			stream: latest("m2", "m1"), refs: referrers("ns/app:latest", "ns/app:latest"),
			want: want{
				items:   []string{"latest 0/2 m2 tag-used users=2", "latest 1/2 m1 old-revision"},
				removed: 1, manifestLinks: []string{"m1"},
			},
		},
		{
			name: "a used tag of another tag, stream or namespace protects nothing", images: plain, opts: keep(0),
			stream: latest("m1"), refs: referrers("ns/app:other", "ns/web:latest", "other/app:latest"),
			want: want{
				items: []string{"latest 0/1 m1 old-revision"}, removed: 1, emptyTags: []string{"latest"}, manifestLinks: []string{"m1"},
			},
		},
		{
			name: "a used tag keeps its revision 0 even when its Image is missing", images: plain, opts: keep(0),
			stream: latest("gone", "m1"), refs: referrers("ns/app:latest"),
			want: want{
				items:   []string{"latest 0/2 gone tag-used users=1", "latest 1/2 m1 old-revision"},
				removed: 1, manifestLinks: []string{"m1"},
			},
		},

		// Images in use by digest.
		{
			name: "a digest reference keeps any revision of its stream", images: plain, opts: keep(1),
			stream: latest("m3", "m2", "m1"), refs: referrers("ns/app@m1"),
			want: want{
				items: []string{
					"latest 0/3 m3 within-revisions", "latest 1/3 m2 old-revision", "latest 2/3 m1 image-used-by-digest users=1",
				},
				removed: 1, manifestLinks: []string{"m2"},
			},
		},
		{
			name: "a digest reference through another stream or namespace protects nothing here", images: plain, opts: keep(0),
			stream: latest("m1"), refs: referrers("ns/web@m1", "other/app@m1"),
			want: want{
				items: []string{"latest 0/1 m1 old-revision"}, removed: 1, emptyTags: []string{"latest"}, manifestLinks: []string{"m1"},
			},
		},

		// Missing Images.
		{
			name: "an item whose Image is missing goes, at revision 0 too, and holds no links", images: plain, opts: keep(3),
			stream: latest("gone", "m1"),
			want: want{
				items:   []string{"latest 0/2 gone image-missing", "latest 1/2 m1 within-revisions"},
				removed: 1,
			},
		},
		{
			name: "an item whose Image is missing goes even when used by digest", images: plain, opts: keep(0),
			stream: latest("gone"), refs: referrers("ns/app@gone"),
			want: want{items: []string{"latest 0/1 gone image-missing"}, removed: 1, emptyTags: []string{"latest"}},
		},

		// Size-limit mode.
		{
			name: "size-limit mode: over the limit goes, at the limit or under it stays", images: sizes, opts: sizeMode(),
			stream: latest("s101", "s100", "s50"), limits: Limits{"ns": 100},
			want: want{
				items: []string{
					"latest 0/3 s101 over-size-limit", "latest 1/3 s100 within-size-limit", "latest 2/3 s50 within-size-limit",
				},
				removed: 1, manifestLinks: []string{"s101"},
			},
		},
		{
			name: "size-limit mode: a namespace without a limit keeps everything", images: sizes, opts: sizeMode(),
			stream: latest("s101", "s100"), limits: Limits{"other": 1},
			want: want{items: []string{"latest 0/2 s101 within-size-limit", "latest 1/2 s100 within-size-limit"}},
		},
		{
			name: "size-limit mode ignores the age of items and of the stream", images: sizes, opts: sizeMode(),
			stream: &Stream{Namespace: "ns", Name: "app", Created: fresh, Tags: []Tag{
				tag("latest", itemAt("s101", fresh), itemAt("s50", fresh)),
			}},
			limits: Limits{"ns": 100},
			want: want{
				items:   []string{"latest 0/2 s101 over-size-limit", "latest 1/2 s50 within-size-limit"},
				removed: 1, manifestLinks: []string{"s101"},
			},
		},
		{
			name: "size-limit mode: a used tag and a digest reference keep Images over the limit", images: sizes, opts: sizeMode(),
			stream: stream("ns", "app", tagOf("latest", "s101"), tagOf("old", "s50", "s101")),
			limits: Limits{"ns": 100}, refs: referrers("ns/app:latest", "ns/app@s101"),
			want: want{items: []string{
				"latest 0/1 s101 tag-used users=1", "old 0/2 s50 within-size-limit", "old 1/2 s101 image-used-by-digest users=1",
			}},
		},
		{
			name: "size-limit mode ignores keep-tag-revisions", images: sizes,
			opts:   func() Options { o := sizeMode(); o.KeepTagRevisions = 5; return o }(),
			stream: latest("s50", "s101"), limits: Limits{"ns": 100},
			want: want{
				items:   []string{"latest 0/2 s50 within-size-limit", "latest 1/2 s101 over-size-limit"},
				removed: 1, manifestLinks: []string{"s101"},
			},
		},
		{
			name: "size-limit mode: a missing Image goes", images: sizes, opts: sizeMode(),
			stream: latest("gone"), limits: Limits{"ns": 100},
			want: want{items: []string{"latest 0/1 gone image-missing"}, removed: 1, emptyTags: []string{"latest"}},
		},

		// Rules in combination.
		{
			name: "every rule in one tag", images: plain, opts: keep(2),
			stream: stream("ns", "app", tag("latest",
				item("m5"), item("gone"), itemAt("m4", fresh), item("m3"), item("m2"), item("m1"))),
			refs: referrers("ns/app:latest", "ns/app@m2", "ns/app@m5"),
			want: want{
				items: []string{
					"latest 0/6 m5 tag-used users=1", "latest 1/6 gone image-missing", "latest 2/6 m4 young",
					"latest 3/6 m3 old-revision", "latest 4/6 m2 image-used-by-digest users=1", "latest 5/6 m1 old-revision",
				},
				removed: 3, manifestLinks: []string{"m1", "m3"},
			},
		},
		{
			name: "a namespaced prune decides a stream as an unnamespaced one", images: plain, opts: namespaced,
			stream: latest("m2", "m1"),
			want: want{
				items:   []string{"latest 0/2 m2 within-revisions", "latest 1/2 m1 old-revision"},
				removed: 1, manifestLinks: []string{"m1"},
			},
		},

		// Empty tags.
		{
			name: "tags whose items all go are empty; a tag that had none is not", images: plain, opts: keep(0),
			stream: stream("ns", "app", tagOf("a", "m1"), tagOf("b", "m2", "m3"), tagOf("c"), tagOf("d", "m4", "m5")),
			refs:   referrers("ns/app:b"),
			want: want{
				items: []string{
					"a 0/1 m1 old-revision", "b 0/2 m2 tag-used users=1", "b 1/2 m3 old-revision",
					"d 0/2 m4 old-revision", "d 1/2 m5 old-revision",
				},
				removed: 4, emptyTags: []string{"a", "d"}, manifestLinks: []string{"m1", "m3", "m4", "m5"},
			},
		},
		{
			name: "an empty stream", images: plain, opts: keep(0), stream: stream("ns", "app"),
			want: want{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := DecideStream(tc.stream, tc.images, tc.refs, tc.limits, tc.opts)
			got := want{
				items:         decisions(t, plan),
				removed:       plan.Removed,
				emptyTags:     plan.EmptyTags,
				layerLinks:    namesOf(plan.LayerLinks),
				manifestLinks: namesOf(plan.ManifestLinks),
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if plan.Stream != tc.stream {
				t.Error("the plan is not of the stream decided")
			}
		})
	}
}

// TestDecideStreamLinks: the links of the stream's repository that the removed items leave
// unused, layer links and manifest links apart.
func TestDecideStreamLinks(t *testing.T) {
	type want struct {
		removed                   int
		layerLinks, manifestLinks []string
		keptFor                   string
	}
	incomplete := func(i *Image) *Image { i.Incomplete = true; return i }
	images := imageSet(
		// Images that do not name every blob they use: a schema 2 Image without its config,
		// a list recorded without its children, a list of the first.
		incomplete(img("inc", "", "x")),
		incomplete(list("ilist")),
		list("list3", "inc"),
		img("a", "a.cfg", "w"),
		img("b", "b.cfg", "x", "y"),
		img("c", "c.cfg", "x", "z"),
		img("d", "d.cfg", "x"),
		// A list of two children (and a third whose Image is missing), a nested index.
		list("list", "c1", "c2", "c3"),
		img("c1", "", "x", "y"),
		img("c2", "", "x", "z"),
		list("idx", "list2"),
		list("list2", "c4"),
		img("c4", "c4.cfg", "v"),
	)
	noRegistry := keep(1)
	noRegistry.PruneRegistry = false
	for _, tc := range []struct {
		name   string
		stream *Stream
		opts   Options
		want   want
	}{
		{
			name: "layers shared by removed items go once", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "a", "b", "c")),
			want:   want{removed: 2, layerLinks: []string{"b.cfg", "c.cfg", "x", "y", "z"}, manifestLinks: []string{"b", "c"}},
		},
		{
			name: "a layer shared with a kept item stays", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "d", "b")),
			want:   want{removed: 1, layerLinks: []string{"b.cfg", "y"}, manifestLinks: []string{"b"}},
		},
		{
			name: "a layer shared with a kept item of another tag stays", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "a", "b"), tagOf("other", "d")),
			want:   want{removed: 1, layerLinks: []string{"b.cfg", "y"}, manifestLinks: []string{"b"}},
		},
		{
			name: "an image kept under another tag keeps its links", opts: keep(1),
			stream: stream("ns", "app", tagOf("t1", "a", "b"), tagOf("t2", "b")),
			want:   want{removed: 1},
		},
		{
			name: "an image kept at another revision of the same tag keeps its links", opts: keep(2),
			stream: stream("ns", "app", tagOf("latest", "b", "a", "b")),
			want:   want{removed: 1},
		},
		{
			name: "-prune-registry=false leaves the links", opts: noRegistry,
			stream: stream("ns", "app", tagOf("latest", "a", "b", "c")),
			want:   want{removed: 2},
		},
		{
			name: "a removed manifest list takes its children and their layers", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "a", "list")),
			want:   want{removed: 1, layerLinks: []string{"x", "y", "z"}, manifestLinks: []string{"c1", "c2", "list"}},
		},
		{
			name: "a child another item names stays, with its layers", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "a", "list"), tagOf("arm", "c1")),
			want:   want{removed: 1, layerLinks: []string{"z"}, manifestLinks: []string{"c2", "list"}},
		},
		{
			name: "a kept list keeps the links of its children, named or not", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "list", "c1")),
			want:   want{removed: 1},
		},
		{
			name: "a removed index takes the lists it names and theirs", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "a", "idx")),
			want:   want{removed: 1, layerLinks: []string{"c4.cfg", "v"}, manifestLinks: []string{"c4", "idx", "list2"}},
		},
		{
			name: "a kept Image without its config keeps every link", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "inc", "b")),
			want:   want{removed: 1, keptFor: "inc"},
		},
		{
			name: "a kept list without its children keeps every link", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "ilist", "b")),
			want:   want{removed: 1, keptFor: "ilist"},
		},
		{
			name: "a kept list whose child lacks its config keeps every link", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "list3", "b")),
			want:   want{removed: 1, keptFor: "inc"},
		},
		{
			name: "a removed Image without its config takes the links it names", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "a", "inc")),
			want:   want{removed: 1, layerLinks: []string{"x"}, manifestLinks: []string{"inc"}},
		},
		{
			name: "items whose Image is missing hold no links", opts: keep(1),
			stream: stream("ns", "app", tagOf("latest", "a", "gone", "b")),
			want:   want{removed: 2, layerLinks: []string{"b.cfg", "x", "y"}, manifestLinks: []string{"b"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := DecideStream(tc.stream, images, nil, nil, tc.opts)
			got := want{
				removed: plan.Removed, layerLinks: namesOf(plan.LayerLinks), manifestLinks: namesOf(plan.ManifestLinks),
			}
			if plan.LinksKeptFor != "" {
				got.keptFor = nameOf(plan.LinksKeptFor)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestPositionOutOfN is the complaint of the seeds: an image at myapp:v2 position 3 out of 5
// (the fourth newest; positions count from 0, the tag's current image, out of the history's
// length, as oc prints them), myapp:v2.1 position 1 out of 2 and myapp:v2.1-may-2016
// position 0 out of 1. With the defaults the last two tags keep it within their revisions,
// so the Image stays although v2 drops it; with -keep-tag-revisions=0 every tag drops it and
// the Image goes, unless something uses one of the tags.
func TestPositionOutOfN(t *testing.T) {
	images := imageSet(img("x", ""), img("v2a", ""), img("v2c", ""), img("v2d", ""), img("v2e", ""), img("v21b", ""))
	myapp := func() *Stream {
		return stream("ns", "myapp",
			tagOf("v2", "v2e", "v2d", "v2c", "x", "v2a"),
			tagOf("v2.1", "v21b", "x"),
			tagOf("v2.1-may-2016", "x"),
		)
	}
	for _, tc := range []struct {
		name      string
		opts      Options
		refs      *Referrers
		wantItems []string // the items naming x
		wantImage string   // the Image's decision
	}{
		{
			name: "defaults", opts: defaults(),
			wantItems: []string{"v2 3/5 x old-revision", "v2.1 1/2 x within-revisions", "v2.1-may-2016 0/1 x within-revisions"},
			wantImage: "x named-by-stream",
		},
		{
			name: "keep-tag-revisions=2", opts: keep(2),
			wantItems: []string{"v2 3/5 x old-revision", "v2.1 1/2 x within-revisions", "v2.1-may-2016 0/1 x within-revisions"},
			wantImage: "x named-by-stream",
		},
		{
			name: "keep-tag-revisions=1", opts: keep(1),
			wantItems: []string{"v2 3/5 x old-revision", "v2.1 1/2 x old-revision", "v2.1-may-2016 0/1 x within-revisions"},
			wantImage: "x named-by-stream",
		},
		{
			name: "keep-tag-revisions=0", opts: keep(0),
			wantItems: []string{"v2 3/5 x old-revision", "v2.1 1/2 x old-revision", "v2.1-may-2016 0/1 x old-revision"},
			wantImage: "x unused",
		},
		{
			name: "keep-tag-revisions=0, the dated tag in use", opts: keep(0), refs: referrers("ns/myapp:v2.1-may-2016"),
			wantItems: []string{"v2 3/5 x old-revision", "v2.1 1/2 x old-revision", "v2.1-may-2016 0/1 x tag-used users=1"},
			wantImage: "x named-by-stream",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := DecideStream(myapp(), images, tc.refs, nil, tc.opts)
			var items []string
			for i, line := range decisions(t, plan) {
				if plan.Items[i].Item.Image == dg("x") {
					items = append(items, line)
				}
			}
			if !reflect.DeepEqual(items, tc.wantItems) {
				t.Errorf("items %q\nwant  %q", items, tc.wantItems)
			}
			var image string
			for _, d := range DecideImages(images, []*Stream{plan.Remaining()}, tc.opts).Images {
				if d.Image == dg("x") {
					image = nameOf(d.Image) + " " + d.Reason.String()
				}
			}
			if image != tc.wantImage {
				t.Errorf("Image %q, want %q", image, tc.wantImage)
			}
		})
	}
}

func TestRemaining(t *testing.T) {
	s := stream("ns", "app", tagOf("a", "m1", "m2"), tagOf("b", "m3"), tagOf("c"), tagOf("d", "m4", "m5"))
	s.ResourceVersion = "7"
	plan := DecideStream(s, plain, referrers("ns/app:d"), nil, keep(0))
	got := plan.Remaining()
	want := &Stream{Namespace: "ns", Name: "app", Created: old, ResourceVersion: "7", Tags: []Tag{
		{Name: "c"},
		{Name: "d", Items: []Item{{Image: dg("m4"), Created: old, Raw: 0}}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("remaining %+v\nwant      %+v", got, want)
	}
	if len(s.Tags) != 4 || len(s.Tags[0].Items) != 2 {
		t.Errorf("Remaining changed the stream decided: %+v", s)
	}

	// A plan whose items do not match its stream leaves it whole.
	plan.Items = plan.Items[1:]
	if got := plan.Remaining(); got != s {
		t.Errorf("a mismatched plan leaves %+v", got)
	}
	if got := (&StreamPlan{}).Remaining(); got != nil {
		t.Errorf("a plan without a stream leaves %+v", got)
	}
}

func TestDecideImages(t *testing.T) {
	type want struct {
		images []string // "name reason"
		delete []string // "name: blobs"
	}
	images := imageSet(
		img("named", "named.cfg", "shared", "n"),
		// idx names list1, which names c1; idx also names c2 directly.
		list("idx", "list1", "c2"),
		list("list1", "c1"),
		img("c1", "", "c1.l"),
		img("c2", "", "c2.l"),
		external(img("ext", "", "ext.l")),
		createdAt(img("young", "", "young.l"), fresh),
		img("old", "old.cfg", "shared", "both", "o"),
		img("old2", "", "both", "o2"),
		// An unused list takes nothing of its children: they are decided on their own.
		list("ulist", "uc"),
		img("uc", "", "uc.l"),
	)
	remaining := []*Stream{
		stream("ns", "app", tagOf("latest", "named", "gone")),
		stream("ns", "multi", tagOf("latest", "idx")),
		nil,
	}
	notAll := defaults()
	notAll.All = false
	noRegistry := defaults()
	noRegistry.PruneRegistry = false
	namespaced := defaults()
	namespaced.Namespace = "ns"
	keptImages := []string{
		"c1 child-of-used-list", "c2 child-of-used-list",
	}
	for _, tc := range []struct {
		name string
		opts Options
		want want
	}{
		{
			name: "defaults", opts: defaults(),
			want: want{
				images: append(keptImages,
					"ext unused", "idx named-by-stream", "list1 child-of-used-list", "named named-by-stream",
					"old unused", "old2 unused", "uc unused", "ulist unused", "young young-image"),
				delete: []string{
					"ext: ext ext.l", "old: both o old old.cfg", "old2: both o2 old2", "uc: uc uc.l", "ulist: ulist",
				},
			},
		},
		{
			name: "-all=false keeps external Images", opts: notAll,
			want: want{
				images: append(keptImages,
					"ext external", "idx named-by-stream", "list1 child-of-used-list", "named named-by-stream",
					"old unused", "old2 unused", "uc unused", "ulist unused", "young young-image"),
				delete: []string{"old: both o old old.cfg", "old2: both o2 old2", "uc: uc uc.l", "ulist: ulist"},
			},
		},
		{
			name: "size-limit mode ignores the age of Images", opts: sizeMode(),
			want: want{
				images: append(keptImages,
					"ext unused", "idx named-by-stream", "list1 child-of-used-list", "named named-by-stream",
					"old unused", "old2 unused", "uc unused", "ulist unused", "young unused"),
				delete: []string{
					"ext: ext ext.l", "old: both o old old.cfg", "old2: both o2 old2", "uc: uc uc.l", "ulist: ulist",
					"young: young young.l",
				},
			},
		},
		{
			name: "-prune-registry=false deletes Images without their blobs", opts: noRegistry,
			want: want{
				images: append(keptImages,
					"ext unused", "idx named-by-stream", "list1 child-of-used-list", "named named-by-stream",
					"old unused", "old2 unused", "uc unused", "ulist unused", "young young-image"),
				delete: []string{"ext:", "old:", "old2:", "uc:", "ulist:"},
			},
		},
		{name: "a namespaced prune decides nothing", opts: namespaced, want: want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := DecideImages(images, remaining, tc.opts)
			var got want
			for _, d := range plan.Images {
				if d.Remove == d.Reason.Keeps() {
					t.Errorf("%s: Remove=%v with reason %s", nameOf(d.Image), d.Remove, d.Reason)
				}
				got.images = append(got.images, nameOf(d.Image)+" "+d.Reason.String())
			}
			for _, d := range plan.Delete {
				line := nameOf(d.Image) + ":"
				for _, b := range d.Blobs {
					line += " " + nameOf(b)
				}
				got.delete = append(got.delete, line)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestDecideImagesIncomplete: a kept Image that does not name every blob it uses keeps the
// blobs it may use unnamed.
func TestDecideImagesIncomplete(t *testing.T) {
	type want struct {
		delete                       []string
		blobsKeptFor, configsKeptFor string
	}
	incomplete := func(i *Image) *Image { i.Incomplete = true; return i }
	removed := []*Image{img("r1", "r1.cfg", "r1.l"), img("r2", "", "r2.l")}
	named := stream("ns", "app", tagOf("latest", "kinc", "klist", "k"))
	for _, tc := range []struct {
		name   string
		images []*Image
		want   want
	}{
		{
			name:   "a kept Image without its config keeps the deleted Images' configs",
			images: []*Image{incomplete(img("kinc", "", "k.l")), incomplete(img("zinc", "", "z.l"))},
			want: want{
				delete:         []string{"r1: r1 r1.l", "r2: r2 r2.l", "zinc: z.l zinc"},
				configsKeptFor: "kinc",
			},
		},
		{
			name:   "a kept list without its children keeps every blob",
			images: []*Image{incomplete(list("klist")), incomplete(img("kinc", "", "k.l"))},
			want:   want{delete: []string{"r1:", "r2:"}, blobsKeptFor: "klist", configsKeptFor: "kinc"},
		},
		{
			name:   "a deleted Image without its config keeps nothing",
			images: []*Image{img("k", "k.cfg", "k.l"), incomplete(img("rinc", "", "rinc.l"))},
			want:   want{delete: []string{"r1: r1 r1.cfg r1.l", "r2: r2 r2.l", "rinc: rinc rinc.l"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := DecideImages(imageSet(append(tc.images, removed...)...), []*Stream{named}, defaults())
			var got want
			for _, d := range plan.Delete {
				line := nameOf(d.Image) + ":"
				for _, b := range d.Blobs {
					line += " " + nameOf(b)
				}
				got.delete = append(got.delete, line)
			}
			if plan.BlobsKeptFor != "" {
				got.blobsKeptFor = nameOf(plan.BlobsKeptFor)
			}
			if plan.ConfigsKeptFor != "" {
				got.configsKeptFor = nameOf(plan.ConfigsKeptFor)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestDecideImagesDigestOrder: the plan does not depend on the map's order.
func TestDecideImagesDigestOrder(t *testing.T) {
	images := map[digest.Digest]*Image{}
	for _, n := range []string{"k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"} {
		i := img(n, "", "shared", n+".l")
		images[i.Manifest] = i
	}
	want := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	for range 20 {
		plan := DecideImages(images, nil, defaults())
		var got []string
		for _, d := range plan.Delete {
			got = append(got, nameOf(d.Image))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("order %q", got)
		}
		if b := namesOf(plan.Delete[0].Blobs); !reflect.DeepEqual(b, []string{"a", "a.l", "shared"}) {
			t.Fatalf("blobs of a: %q", b)
		}
	}
}
