package restore

import (
	"bytes"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

func dg(s string) digest.Digest { return digest.FromString(s) }

func inventory(blobs []string, repos ...prune.Repository) *prune.Inventory {
	inv := &prune.Inventory{Repositories: repos}
	for _, b := range blobs {
		inv.Blobs = append(inv.Blobs, prune.Blob{Digest: dg(b)})
	}
	return inv
}

func manifests(names ...string) []prune.Link {
	var out []prune.Link
	for _, n := range names {
		out = append(out, prune.Link{Digest: dg(n)})
	}
	return out
}

func local(string) bool { return true }

func TestCheck(t *testing.T) {
	inv := inventory([]string{"ok", "ok-cfg", "base", "broken", "broken-cfg", "lost", "idx", "child", "orphaned"},
		prune.Repository{Name: "ns/app", Manifests: manifests("ok", "broken", "lost", "dangling")},
		prune.Repository{Name: "ns/multi", Manifests: manifests("idx", "child")},
		prune.Repository{Name: "deep/a/b", Manifests: manifests("orphaned")},
		prune.Repository{Name: "ns/half"}, // layer links only
	)
	c := NewChecker(inv)
	c.AddImage(prune.Image{Manifest: dg("ok"), Config: dg("ok-cfg"), Layers: []digest.Digest{dg("base")}}, true)
	c.AddImage(
		prune.Image{Manifest: dg("broken"), Config: dg("broken-cfg"), Layers: []digest.Digest{dg("base"), dg("gone")}},
		true,
	)
	c.AddImage(prune.Image{Manifest: dg("imported"), Layers: []digest.Digest{dg("elsewhere")}}, false)
	c.AddImage(prune.Image{Manifest: dg("idx"), Children: []digest.Digest{dg("child")}}, true)
	c.AddImage(prune.Image{Manifest: dg("child")}, true)
	c.AddImage(prune.Image{Manifest: dg("orphaned")}, true)
	c.AddStream(prune.StreamTags{Repository: "ns/app", Tags: []prune.TagHistory{
		{Tag: "latest", Items: []prune.TagItem{{Image: dg("broken")}, {Image: dg("ok")}}},
		{Tag: "v1", Items: []prune.TagItem{{Image: dg("lost")}}},
		{Tag: "ext", Items: []prune.TagItem{{Image: dg("nowhere"), Reference: "quay.io/x/y@sha256:..."}}},
		{Tag: "imp", Items: []prune.TagItem{{Image: dg("imported")}}},
	}}, func(ref string) bool { return !strings.HasPrefix(ref, "quay.io") })
	r := c.Report()

	var buf bytes.Buffer
	WriteReport(&buf, r)
	out := buf.String()
	for _, want := range []string{
		"Broken image " + dg("broken").String() + ": blob " + dg("gone").String() + " missing (layer)\n",
		"Broken tag ns/app:latest at position 0 out of 2: image " + dg("broken").String() + " is broken\n",
		"Missing image ns/app:v1 at position 0 out of 1: Image " + dg("lost").String() + " does not exist (recoverable)\n",
		"Unknown repository ns/multi: no image stream\n",
		"Unknown repository deep/a/b: no image stream (not recoverable: the name is not <namespace>/<name>",
		"Unknown repository ns/half: no image stream (not recoverable: no stored manifest to record)\n",
		"Unknown manifest ns/app@" + dg("lost").String() + ": no Image (recoverable)\n",
		"Unknown manifest ns/multi@" + dg("idx").String() + ": no image stream (recoverable)\n",
		"Unknown manifest deep/a/b@" + dg("orphaned").String() + ": no image stream\n",
		"Dangling manifest link ns/app@" + dg("dangling").String() + ": blob missing\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, dg("nowhere").String()) || strings.Contains(out, dg("imported").String()) ||
		strings.Contains(out, dg("elsewhere").String()) {
		t.Errorf("images of other registries are reported:\n%s", out)
	}
	recs := r.Recoverable()
	want := []Recovery{
		{Manifest: Manifest{Repository: "ns/app", Digest: dg("lost")}, CreateImage: true, Tag: false},
		{Manifest: Manifest{Repository: "ns/multi", Digest: dg("idx")}, Tag: true},
	}
	if len(recs) != len(want) || recs[0] != want[0] || recs[1] != want[1] {
		t.Errorf("recoverable %+v, want %+v", recs, want)
	}
	// broken image, broken tag, dangling link, two unadoptable repositories, the manifest of one.
	if n := r.Unrecoverable(); n != 6 {
		t.Errorf("unrecoverable %d, want 6", n)
	}

	c = NewChecker(inventory([]string{"ok"}, prune.Repository{Name: "ns/app", Manifests: manifests("ok")}))
	c.AddImage(prune.Image{Manifest: dg("ok")}, true)
	c.AddStream(
		prune.StreamTags{
			Repository: "ns/app",
			Tags:       []prune.TagHistory{{Tag: "latest", Items: []prune.TagItem{{Image: dg("ok")}}}},
		},
		local,
	)
	r = c.Report()
	buf.Reset()
	WriteReport(&buf, r)
	if r.Problems() != 0 || buf.String() != "Consistent: 1 images, 1 image streams, 1 repositories\n" {
		t.Errorf("consistent:\n%s", buf.String())
	}
}

func TestLostFoundTag(t *testing.T) {
	if got := LostFoundTag(dg("x")); got != "lost-found-"+dg("x").Encoded() || len(got) > 128 {
		t.Errorf("tag %q", got)
	}
}
