package restore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

// manifestsIn reads manifests from a map: what storage holds.
type manifestsIn map[digest.Digest]prune.Image

func (m manifestsIn) ReadManifest(_ context.Context, d digest.Digest) (prune.Image, error) {
	img, ok := m[d]
	if !ok {
		return prune.Image{}, fmt.Errorf("%s: %w", d, prune.ErrManifestNotStored)
	}
	return img, nil
}

// TestFollowLists: a tag whose list reaches a manifest that cannot be pulled is reported, at any
// depth and whether or not each level has an Image.
func TestFollowLists(t *testing.T) {
	outer := prune.Image{Manifest: dg("outer"), Children: []digest.Digest{dg("inner")}}
	inner := prune.Image{Manifest: dg("inner"), Children: []digest.Digest{dg("m1"), dg("m2")}}
	run := func(blobs []string, linked []string, withInnerImage bool) string {
		t.Helper()
		c := NewChecker(inventory(blobs, prune.Repository{Name: "ns/app", Manifests: manifests(linked...)}))
		c.AddImage(outer, true)
		if withInnerImage {
			c.AddImage(inner, true)
		}
		c.AddImage(prune.Image{Manifest: dg("m1")}, true)
		c.AddImage(prune.Image{Manifest: dg("m2")}, true)
		c.AddStream(
			prune.StreamTags{
				Repository: "ns/app",
				Tags:       []prune.TagHistory{{Tag: "latest", Items: []prune.TagItem{{Image: dg("outer")}}}},
			},
			local,
		)
		if err := c.FollowLists(context.Background(), manifestsIn{dg("inner"): inner}); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		WriteReport(&buf, c.Report())
		return buf.String()
	}
	all := []string{"outer", "inner", "m1", "m2"}
	if out := run(all, all, false); !strings.HasPrefix(out, "Unknown manifest ns/app@"+dg("inner").String()) ||
		strings.Contains(out, "Broken tag") {
		t.Errorf("intact, inner without an Image:\n%s", out)
	}
	for _, tc := range []struct {
		name          string
		blobs, linked []string
		inner         bool
		want          string
	}{
		{"a grandchild's revision link gone", all, []string{"outer", "inner", "m1"}, false, "reaches manifest " + dg("m2").String() + ", but repository ns/app does not link it"},
		{"a grandchild's blob gone", []string{"outer", "inner", "m1"}, all, true, "reaches manifest " + dg("inner").String() + ", but its Image is broken"},
		{"a grandchild's blob gone below an inner index without an Image", []string{"outer", "inner", "m1"}, all, false, "reaches manifest " + dg("m2").String() + ", but storage lacks it"},
	} {
		out := run(tc.blobs, tc.linked, tc.inner)
		if !strings.Contains(
			out,
			"Broken tag ns/app:latest at position 0 out of 1: list "+dg("outer").String()+" "+tc.want+"\n",
		) {
			t.Errorf("%s:\n%s", tc.name, out)
		}
	}
}

// TestFollowListsChecksTheBlobsOfManifestsWithoutAnImage: below a level without an Image, the
// blobs the manifest read from storage uses must be stored.
func TestFollowListsChecksTheBlobsOfManifestsWithoutAnImage(t *testing.T) {
	c := NewChecker(
		inventory(
			[]string{"outer", "m1", "cfg"},
			prune.Repository{Name: "ns/app", Manifests: manifests("outer", "m1")},
		),
	)
	c.AddImage(prune.Image{Manifest: dg("outer"), Children: []digest.Digest{dg("m1")}}, true)
	c.AddStream(
		prune.StreamTags{
			Repository: "ns/app",
			Tags:       []prune.TagHistory{{Tag: "latest", Items: []prune.TagItem{{Image: dg("outer")}}}},
		},
		local,
	)
	m1 := prune.Image{Manifest: dg("m1"), Config: dg("cfg"), Layers: []digest.Digest{dg("layer")}}
	if err := c.FollowLists(context.Background(), manifestsIn{dg("m1"): m1}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	WriteReport(&buf, c.Report())
	if !strings.Contains(
		buf.String(),
		"reaches manifest "+dg("m1").String()+", but it has no Image, and storage lacks blob "+dg("layer").String(),
	) {
		t.Errorf("report:\n%s", buf.String())
	}
}
