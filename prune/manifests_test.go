package prune

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// storedManifests is a ManifestReader over manifests held in memory, keyed by digest.
type storedManifests struct {
	mu         sync.Mutex
	manifests  map[digest.Digest]Image
	unreadable map[digest.Digest]bool
	fail       error
	reads      []digest.Digest
}

func (s *storedManifests) ReadManifest(_ context.Context, d digest.Digest) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads = append(s.reads, d)
	if s.fail != nil {
		return Image{}, s.fail
	}
	if s.unreadable[d] {
		return Image{}, fmt.Errorf("not JSON: %w", ErrManifestUnreadable)
	}
	img, ok := s.manifests[d]
	if !ok {
		return Image{}, fmt.Errorf("%s: %w", d, ErrManifestNotStored)
	}
	return img, nil
}

func stored(images ...Image) *storedManifests {
	s := &storedManifests{manifests: map[digest.Digest]Image{}, unreadable: map[digest.Digest]bool{}}
	for _, img := range images {
		s.manifests[img.Manifest] = img
	}
	return s
}

func list(manifest string, children ...string) Image {
	out := Image{Manifest: dg(manifest)}
	for _, c := range children {
		out.Children = append(out.Children, dg(c))
	}
	return out
}

// TestResolve covers what the image API cannot say a list reaches: the manifests are read from
// storage at any depth; where storage cannot say either, the repository fails closed.
func TestResolve(t *testing.T) {
	all := []string{"outer", "inner", "m1", "c1", "l1", "m2", "c2", "l2", "m3", "c3", "l3", "old", "x", "cx"}
	// ns/app:latest is an index of an index (inner) of two images; inner's Image is gone.
	storage := func() *storedManifests {
		return stored(list("outer", "inner"), list("inner", "m1", "m2"), img("m1", "c1", "l1"), img("m2", "c2", "l2"))
	}
	appInv := func() Inventory {
		return Inventory{
			Blobs: blobs("outer", "inner", "m1", "c1", "l1", "m2", "c2", "l2", "m3", "c3", "l3", "old"),
			Repositories: []Repository{{
				Name: "ns/app", Manifests: links("outer", "inner", "m1", "m2", "m3"),
				Layers: links("c1", "l1", "c2", "l2", "c3", "l3", "old"),
				Tags: []Tag{
					{
						Name:    "latest",
						Current: dg("outer"),
						State:   TagRead,
						Index:   []digest.Digest{dg("outer")},
						ModTime: old,
					},
				},
			}},
		}
	}
	tests := []struct {
		name    string
		images  []Image
		streams []Stream
		reader  func() *storedManifests
		inv     Inventory
		want    planNames
		closed  []string
	}{
		{
			// The two images keep their Images: before, their revision links went.
			name: "index of indexes whose inner index lost its Image: all it reaches stays",
			images: []Image{
				list("outer", "inner"),
				img("m1", "c1", "l1"),
				img("m2", "c2", "l2"),
				img("m3", "c3", "l3"),
			},
			streams: []Stream{stream("ns/app", "outer")},
			reader:  storage,
			inv:     appInv(),
			// m3 is an Image no stream names: its links go, its blobs stay (global).
			want: planNames{
				ManifestLinks: []string{"ns/app@m3"},
				LayerLinks:    sortedLinks("ns/app", "c3", "l3", "old"),
				Blobs:         []string{"old"},
			},
		},
		{
			// Before, the grandchildren's manifest blobs and their layers went.
			name:    "index of indexes, only the outer Image left: storage says the rest",
			images:  []Image{list("outer", "inner")},
			streams: []Stream{stream("ns/app", "outer")},
			reader:  storage,
			inv:     appInv(),
			want: planNames{
				ManifestLinks: []string{"ns/app@m3"}, LayerLinks: sortedLinks("ns/app", "c3", "l3", "old"),
				Blobs: sortedNames("m3", "c3", "l3", "old"),
			},
		},
		{
			name:    "a list reaching a manifest storage lacks: the whole repository stays, manifest links included",
			images:  []Image{list("outer", "inner")},
			streams: []Stream{stream("ns/app", "outer")},
			reader: func() *storedManifests {
				s := storage()
				delete(s.manifests, dg("m2"))
				return s
			},
			inv:    appInv(),
			want:   planNames{},
			closed: []string{"ns/app"},
		},
		{
			name:    "a list reaching a manifest that does not parse: the whole repository stays",
			images:  []Image{list("outer", "inner")},
			streams: []Stream{stream("ns/app", "outer")},
			reader: func() *storedManifests {
				s := storage()
				s.unreadable[dg("inner")] = true
				return s
			},
			inv:    appInv(),
			want:   planNames{},
			closed: []string{"ns/app"},
		},
		{
			name:    "no reader: a repository the API cannot describe stays whole",
			images:  []Image{list("outer", "inner")},
			streams: []Stream{stream("ns/app", "outer")},
			inv:     appInv(),
			want:    planNames{},
			closed:  []string{"ns/app"},
		},
		{
			// Before, the repository kept every layer link for ever (the API never catches up).
			name:    "a child of a list lost its Image: storage says what it uses, the rest goes",
			images:  []Image{list("outer", "m1", "m2"), img("m1", "c1", "l1")},
			streams: []Stream{stream("ns/app", "outer")},
			reader:  func() *storedManifests { return stored(img("m2", "c2", "l2")) },
			inv: Inventory{
				Blobs: blobs("outer", "m1", "c1", "l1", "m2", "c2", "l2", "old"),
				Repositories: []Repository{
					{
						Name:      "ns/app",
						Manifests: links("outer", "m1", "m2"),
						Layers:    links("c1", "l1", "c2", "l2", "old"),
					},
				},
			},
			want: planNames{LayerLinks: []string{"ns/app@old"}, Blobs: []string{"old"}},
		},
		{
			name:    "an Image without its config digest: storage names the config",
			images:  []Image{{Manifest: dg("m1"), Layers: []digest.Digest{dg("l1")}, Incomplete: true}},
			streams: []Stream{stream("ns/app", "m1")},
			reader:  func() *storedManifests { return stored(img("m1", "c1", "l1")) },
			inv: Inventory{
				Blobs:        blobs("m1", "c1", "l1", "old"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("m1"), Layers: links("c1", "l1", "old")}},
			},
			want: planNames{LayerLinks: []string{"ns/app@old"}, Blobs: []string{"old"}},
		},
		{
			name:    "a list naming itself through a child does not loop",
			images:  []Image{list("outer", "inner")},
			streams: []Stream{stream("ns/app", "outer")},
			reader: func() *storedManifests {
				return stored(list("outer", "inner"), list("inner", "outer", "m1"), img("m1", "c1", "l1"))
			},
			inv: Inventory{
				Blobs: blobs("outer", "inner", "m1", "c1", "l1"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("outer", "inner", "m1"), Layers: links("c1", "l1")},
				},
			},
			want: planNames{},
		},
		{
			// Only the repository whose stream reaches the unknown fails closed.
			name:    "a repository failing closed leaves the others decided as usual",
			images:  []Image{list("outer", "inner"), img("x", "cx")},
			streams: []Stream{stream("ns/app", "outer"), stream("ns/other", "x")},
			reader:  func() *storedManifests { return stored() },
			inv: Inventory{
				Blobs: blobs("outer", "inner", "x", "cx", "old"),
				Repositories: []Repository{
					{Name: "ns/app", Manifests: links("outer", "inner"), Layers: links("old")},
					{Name: "ns/other", Manifests: links("x", "outer"), Layers: links("cx", "old")},
				},
			},
			want:   planNames{ManifestLinks: []string{"ns/other@outer"}, LayerLinks: []string{"ns/other@old"}},
			closed: []string{"ns/app"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs := refsOf(tt.images, tt.streams)
			var reader ManifestReader
			if tt.reader != nil {
				reader = tt.reader()
			}
			if err := refs.Resolve(context.Background(), reader, 3); err != nil {
				t.Fatal(err)
			}
			if got := refs.FailingClosed(); !reflect.DeepEqual(got, tt.closed) {
				t.Errorf("failing closed: %v, want %v", got, tt.closed)
			}
			plan := Decide(refs, &tt.inv, opts())
			if got := names(plan, all); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n got %+v\nwant %+v", got, tt.want)
			}
			checkInvariant(t, &tt.inv, plan)
		})
	}
}

func TestResolveReadsEachManifestOnceAndOnlyWhenNeeded(t *testing.T) {
	refs := refsOf([]Image{list("outer", "inner"), img("m1", "c1", "l1")},
		[]Stream{stream("ns/a", "outer"), stream("ns/b", "outer"), stream("ns/c", "m1")})
	s := stored(list("inner", "m1"), img("m1", "c1", "l1"))
	if err := refs.Resolve(context.Background(), s, 2); err != nil {
		t.Fatal(err)
	}
	// inner (no Image) and, below it, m1 (read, since the walk below a gap is storage's).
	if len(s.reads) != 2 {
		t.Fatalf("reads %v, want inner and m1 once each", s.reads)
	}
	s = stored()
	if err := refsOf([]Image{img("m1", "c1", "l1")}, []Stream{stream("ns/c", "m1")}).Resolve(context.Background(), s, 2); err != nil ||
		len(s.reads) != 0 {
		t.Fatalf("a fully described stream read %v (err %v)", s.reads, err)
	}
}

func TestResolveFailsOnStorageErrors(t *testing.T) {
	refs := refsOf([]Image{list("outer", "inner")}, []Stream{stream("ns/app", "outer")})
	s := stored()
	s.fail = errors.New("connection reset")
	err := refs.Resolve(context.Background(), s, 1)
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("err = %v", err)
	}
}

// TestRunReadsManifestsThroughTheInventory proves Run wires the reader: an inventory that can
// read manifests saves the grandchildren of an index whose inner index lost its Image.
func TestRunReadsManifestsThroughTheInventory(t *testing.T) {
	refs := refsOf([]Image{list("outer", "inner")}, []Stream{stream("ns/app", "outer")})
	inv := &Inventory{
		Blobs: blobs("outer", "inner", "m1", "c1", "l1", "junk"),
		Repositories: []Repository{
			{Name: "ns/app", Manifests: links("outer", "inner", "m1"), Layers: links("c1", "l1")},
		},
	}
	src := readingInventory{
		staticSource:    staticSource{inv: inv},
		storedManifests: stored(list("inner", "m1"), img("m1", "c1", "l1")),
	}
	quiet := logrus.New()
	quiet.SetLevel(logrus.PanicLevel)
	r := &recorder{}
	_, sum, err := Run(
		context.Background(),
		Config{
			References: staticSource{refs: refs},
			Inventory:  src,
			Remover:    r,
			Options:    opts(),
			Workers:    2,
			Log:        quiet,
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count[KindBlob] != 1 || sum.Count[KindManifestLink] != 0 || sum.Count[KindLayerLink] != 0 {
		t.Fatalf("summary %+v, calls %v: want only the junk blob deleted", sum, r.calls)
	}
}

type readingInventory struct {
	staticSource
	*storedManifests
}

// TestResolveKeepsTheConfigOfAnIncompleteImageNoStreamNames: the Image alone keeps its blobs,
// its config among them, though it does not name it.
func TestResolveKeepsTheConfigOfAnIncompleteImageNoStreamNames(t *testing.T) {
	refs := refsOf([]Image{{Manifest: dg("m1"), Layers: []digest.Digest{dg("l1")}, Incomplete: true}}, nil)
	if err := refs.Resolve(context.Background(), stored(img("m1", "c1", "l1")), 1); err != nil {
		t.Fatal(err)
	}
	inv := &Inventory{Blobs: blobs("m1", "c1", "l1", "junk")}
	if got := names(Decide(refs, inv, opts()), []string{"junk"}); !reflect.DeepEqual(
		got,
		planNames{Blobs: []string{"junk"}},
	) {
		t.Errorf("plan %+v, want only junk", got)
	}
}

// TestExplainSaysAManifestReadFromStorageKeepsIt: the explanation of a blob kept only through
// a manifest read from storage says so.
func TestExplainSaysAManifestReadFromStorageKeepsIt(t *testing.T) {
	refs := refsOf([]Image{list("outer", "inner")}, []Stream{stream("ns/app", "outer")})
	if err := refs.Resolve(context.Background(), stored(list("inner", "m1"), img("m1", "c1", "l1")), 1); err != nil {
		t.Fatal(err)
	}
	inv := &Inventory{Blobs: blobs("outer", "inner", "m1", "c1", "l1"),
		Repositories: []Repository{
			{Name: "ns/app", Manifests: links("outer", "inner", "m1"), Layers: links("c1", "l1")},
		}}
	exp := Explain(dg("l1"), &Usage{Target: dg("l1")}, refs, inv, opts())
	var buf strings.Builder
	WriteExplanation(&buf, exp)
	if exp.Deleted || !strings.Contains(buf.String(), "a list that stays reaches a manifest that uses it") ||
		!strings.Contains(buf.String(), "layer link ns/app: kept: an image of image stream ns/app uses it") {
		t.Errorf("explanation:\n%s", buf.String())
	}
}

// TestReviewedShapes: shapes an adversarial review found.
func TestReviewedShapes(t *testing.T) {
	all := []string{"L", "C", "cC", "lC", "X"}
	t.Run("a child that the same history also names as a root", func(t *testing.T) {
		for _, order := range [][]string{{"L", "C"}, {"C", "L"}} {
			refs := refsOf([]Image{list("L", "C")}, []Stream{stream("ns/app", order...)})
			if err := refs.Resolve(context.Background(), stored(img("C", "cC", "lC")), 1); err != nil {
				t.Fatal(err)
			}
			inv := &Inventory{Blobs: blobs("L", "C", "cC", "lC"),
				Repositories: []Repository{{Name: "ns/app", Manifests: links("L", "C"), Layers: links("cC", "lC")}}}
			if got := names(Decide(refs, inv, opts()), all); !reflect.DeepEqual(got, planNames{}) {
				t.Errorf("history %v: plan %+v, want nothing deleted", order, got)
			}
		}
	})
	t.Run("a stream naming a child that another stream's list keeps", func(t *testing.T) {
		refs := refsOf([]Image{list("L", "C")}, []Stream{stream("ns/a", "L"), stream("ns/b", "C")})
		if err := refs.Resolve(context.Background(), stored(img("C", "cC", "lC")), 1); err != nil {
			t.Fatal(err)
		}
		inv := &Inventory{Blobs: blobs("L", "C", "cC", "lC"), Repositories: []Repository{
			{Name: "ns/a", Manifests: links("L", "C"), Layers: links("cC", "lC")},
			{Name: "ns/b", Manifests: links("C"), Layers: links("cC", "lC"),
				Tags: []Tag{
					{Name: "arm", Current: dg("C"), State: TagRead, Index: []digest.Digest{dg("C")}, ModTime: old},
				}},
		}}
		if got := names(Decide(refs, inv, opts()), all); !reflect.DeepEqual(got, planNames{}) {
			t.Errorf("plan %+v, want ns/b's tag, manifest link and layer links kept", got)
		}
	})
	t.Run("a fail-closed repository reads a tag without an index", func(t *testing.T) {
		refs := refsOf([]Image{list("L", "C")}, []Stream{stream("ns/app", "L")})
		if err := refs.Resolve(context.Background(), stored(), 1); err != nil {
			t.Fatal(err)
		}
		inv := &Inventory{Blobs: blobs("L", "X"), Repositories: []Repository{{Name: "ns/app", Manifests: links("L"),
			Tags: []Tag{{Name: "odd", ModTime: old}}}}}
		plan := Decide(refs, inv, opts())
		if got := names(plan, all); !reflect.DeepEqual(got.Unresolved, []string{"ns/app:odd"}) {
			t.Fatalf("plan %+v, want the tag read first", got)
		}
		tag := inv.Tag(TagRef{Repository: "ns/app", Tag: "odd"})
		tag.Current, tag.State = dg("X"), TagRead
		if got := names(Decide(refs, inv, opts()), all); !reflect.DeepEqual(got, planNames{}) {
			t.Errorf("plan %+v, want X kept for the tag", got)
		}
	})
	t.Run("a tag whose manifest the repository does not link says so", func(t *testing.T) {
		refs := refsOf([]Image{img("C", "cC")}, []Stream{stream("ns/app", "C")})
		inv := &Inventory{Blobs: blobs("C", "cC"), Repositories: []Repository{{Name: "ns/app", Layers: links("cC"),
			Tags: []Tag{{Name: "t", Current: dg("C"), State: TagRead, Index: []digest.Digest{dg("C")}, ModTime: old}}}}}
		plan := Decide(refs, inv, opts())
		if tags := plan.Of(KindTag); len(tags) != 1 ||
			tags[0].Why() != "the repository does not link the manifest it points at" {
			t.Errorf("tags %+v", tags)
		}
	})
	t.Run("a non-sha256 child is read by its own digest", func(t *testing.T) {
		child := digest.Digest("sha512:" + strings.Repeat("ab", 64))
		refs := refsOf([]Image{{Manifest: dg("L"), Children: []digest.Digest{child}}}, []Stream{stream("ns/app", "L")})
		s := stored(Image{Manifest: child, Config: dg("cC")})
		if err := refs.Resolve(context.Background(), s, 1); err != nil {
			t.Fatal(err)
		}
		if len(s.reads) != 1 || s.reads[0] != child || refs.FailingClosed() != nil {
			t.Errorf("reads %v, failing closed %v", s.reads, refs.FailingClosed())
		}
	})
}

// TestBeforeSweep: the hook runs once, before the first deletion of a delete run only, and its
// error stops the run with nothing deleted.
func TestBeforeSweep(t *testing.T) {
	quiet := logrus.New()
	quiet.SetLevel(logrus.PanicLevel)
	inv := &Inventory{Blobs: blobs("orphan")}
	calls := 0
	stop := errors.New("lock lost")
	r := &recorder{}
	cfg := Config{
		References:     staticSource{refs: refsOf(nil, nil)},
		Inventory:      staticSource{inv: inv},
		Remover:        r,
		Options:        opts(),
		Workers:        1,
		Log:            quiet,
		AllowDeleteAll: true,
		BeforeSweep:    func(context.Context) error { calls++; return stop },
	}
	if _, _, err := Run(context.Background(), cfg); !errors.Is(err, stop) || len(r.calls) != 0 || calls != 1 {
		t.Fatalf("err %v, deletions %v, hook calls %d", err, r.calls, calls)
	}
	cfg.Remover = DryRun{} // a dry run does not ask
	if _, _, err := Run(context.Background(), cfg); err != nil || calls != 1 {
		t.Fatalf("dry run: err %v, hook calls %d", err, calls)
	}
}
