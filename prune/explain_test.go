package prune

import (
	"bytes"
	"cmp"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func sortUses(u []ImageUse) {
	slices.SortFunc(u, func(a, b ImageUse) int { return cmp.Compare(a.Image, b.Image) })
}

// explainWorld: a layer used by an image tagged twice, and by the child of an index tagged once.
func explainWorld(target string) (*References, *Usage, *Inventory) {
	e := NewExplainer(dg(target))
	e.AddImage(Image{Manifest: dg("m1"), Config: dg("c1"), Layers: []digest.Digest{dg("base"), dg("l1")}})
	e.AddImage(Image{Manifest: dg("child"), Config: dg("cc"), Layers: []digest.Digest{dg("base")}})
	e.AddImage(Image{Manifest: dg("index"), Children: []digest.Digest{dg("child")}})
	e.AddImage(Image{Manifest: dg("lonely"), Layers: []digest.Digest{dg("base")}})
	e.AddStream(StreamTags{Repository: "ns/app", Tags: []TagHistory{
		{Tag: "latest", Items: []TagItem{{Image: dg("other")}, {Image: dg("m1")}}},
		{Tag: "v1", Items: []TagItem{{Image: dg("m1")}}},
	}})
	e.AddStream(
		StreamTags{Repository: "ns/multi", Tags: []TagHistory{{Tag: "latest", Items: []TagItem{{Image: dg("index")}}}}},
	)
	refs, usage := e.Build()
	inv := &Inventory{
		Blobs: blobs("base", "l1", "orphan"),
		Repositories: []Repository{
			{Name: "ns/app", Layers: links("base", "orphan")},
			{Name: "ns/gone", Layers: links("base")},
		},
	}
	return refs, usage, inv
}

func TestExplainerPositions(t *testing.T) {
	_, usage, _ := explainWorld("base")
	wantUsers := []ImageUse{{dg("child"), RoleLayer}, {dg("lonely"), RoleLayer}, {dg("m1"), RoleLayer}}
	sortUses(wantUsers)
	if !reflect.DeepEqual(usage.Users, wantUsers) {
		t.Errorf("users %v, want %v", usage.Users, wantUsers)
	}
	want := []TagPosition{
		{Repository: "ns/app", Tag: "latest", Position: 1, Total: 2, Image: dg("m1"), User: dg("m1")},
		{Repository: "ns/app", Tag: "v1", Position: 0, Total: 1, Image: dg("m1"), User: dg("m1")},
		{Repository: "ns/multi", Tag: "latest", Position: 0, Total: 1, Image: dg("index"), User: dg("child")},
	}
	if !reflect.DeepEqual(usage.Tags, want) {
		t.Errorf("tags\n%v\nwant\n%v", usage.Tags, want)
	}
}

func TestExplain(t *testing.T) {
	refs, usage, inv := explainWorld("base")
	exp := Explain(dg("base"), usage, refs, inv, opts())
	if exp.Deleted || exp.Blob == nil || exp.Young {
		t.Fatalf("base: %+v", exp)
	}
	var buf bytes.Buffer
	WriteExplanation(&buf, exp)
	for _, want := range []string{
		"would be kept:\n",
		"      ns/app:latest at position 1 out of 2\n",
		"      ns/multi:latest at position 0 out of 1, through manifest list " + dg("index").String() + "\n",
		"      no image stream tag names it",
		"  the grace period does not hold it: modified 48h0m0s ago (-prune-keep-younger-than=1h0m0s)\n",
		"  layer link ns/app: kept: an image of image stream ns/app uses it\n",
		"  layer link ns/gone: would be deleted: its repository goes: image stream ns/gone does not exist\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}

	refs, usage, inv = explainWorld("orphan")
	exp = Explain(dg("orphan"), usage, refs, inv, opts())
	buf.Reset()
	WriteExplanation(&buf, exp)
	if !exp.Deleted ||
		!strings.HasPrefix(
			buf.String(),
			"Blob "+dg("orphan").String()+" (6 B) would be deleted: no image references it\n",
		) {
		t.Errorf("orphan:\n%s", buf.String())
	}

	// Within the grace period.
	inv.Blobs[2].ModTime = fresh
	exp = Explain(dg("orphan"), usage, refs, inv, opts())
	buf.Reset()
	WriteExplanation(&buf, exp)
	if exp.Deleted ||
		!strings.Contains(
			buf.String(),
			"  - the grace period holds it: modified 10m0s ago (-prune-keep-younger-than=1h0m0s)\n",
		) {
		t.Errorf("young orphan:\n%s", buf.String())
	}

	exp = Explain(dg("nowhere"), &Usage{Target: dg("nowhere")}, refs, inv, opts())
	buf.Reset()
	WriteExplanation(&buf, exp)
	if !strings.Contains(buf.String(), "is not stored as a blob") {
		t.Errorf("unknown digest:\n%s", buf.String())
	}
}

func TestExplainKeptForAYoungManifest(t *testing.T) {
	refs := refsOf([]Image{img("m1", "c1", "l1")}, []Stream{stream("ns/app", "m1")})
	inv := &Inventory{
		Blobs: blobs("m1", "c1", "l1", "l9"),
		Repositories: []Repository{{Name: "ns/app",
			Manifests: append(links("m1"), Link{Digest: dg("m9"), ModTime: fresh}), Layers: links("c1", "l1", "l9")}},
	}
	exp := Explain(dg("l9"), &Usage{}, refs, inv, opts())
	if exp.Deleted || len(exp.Links) != 1 || exp.Links[0].Deleted ||
		!strings.Contains(exp.Links[0].Reason, "a manifest pushed within the grace period") {
		t.Errorf("got %+v", exp)
	}
}
