package prune

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// explainSource is an image API holding one Image, tagged ns/app:latest.
type explainSource struct{ image Image }

func (s explainSource) References(context.Context) (*References, error) {
	panic("not the explain pass")
}

func (s explainSource) Explain(_ context.Context, target digest.Digest) (*References, *Usage, error) {
	e := NewExplainer(target)
	e.AddImage(s.image)
	e.AddStream(
		StreamTags{
			Repository: "ns/app",
			Tags:       []TagHistory{{Tag: "latest", Items: []TagItem{{Image: s.image.Manifest}}}},
		},
	)
	refs, usage := e.Build()
	return refs, usage, nil
}

// plainSource is a ReferenceSource and no more.
type plainSource struct{}

func (plainSource) References(context.Context) (*References, error) { return nil, nil }

// resolvingInventory is storage whose tags all point at current, recording which were read.
type resolvingInventory struct {
	inv      *Inventory
	current  digest.Digest
	resolved []TagRef
}

func (r *resolvingInventory) Inventory(context.Context) (*Inventory, error) { return r.inv, nil }

func (r *resolvingInventory) ResolveTags(_ context.Context, inv *Inventory, tags []TagRef) error {
	for _, ref := range tags {
		r.resolved = append(r.resolved, ref)
		inv.Tag(ref).Current, inv.Tag(ref).State = r.current, TagRead
	}
	return nil
}

// TestExplainRun: the explanation reads the image API's explain pass and the inventory, and the
// current links of the tags whose index names the digest, and only those.
func TestExplainRun(t *testing.T) {
	manifest, layer := digest.FromString("manifest"), digest.FromString("layer")
	old := time.Now().Add(-48 * time.Hour)
	inv := &resolvingInventory{current: manifest, inv: &Inventory{
		Blobs: []Blob{{Digest: layer, Size: 1, ModTime: old}, {Digest: manifest, Size: 1, ModTime: old}},
		Repositories: []Repository{{
			Name:      "ns/app",
			Manifests: []Link{{Digest: manifest, ModTime: old}},
			Layers:    []Link{{Digest: layer, ModTime: old}},
			Tags: []Tag{
				{
					Name:           "latest",
					Index:          []digest.Digest{manifest},
					IndexModTimes:  []time.Time{old},
					ModTime:        old,
					CurrentModTime: old,
				},
				{
					Name:           "other",
					Index:          []digest.Digest{digest.FromString("elsewhere")},
					IndexModTimes:  []time.Time{old},
					ModTime:        old,
					CurrentModTime: old,
				},
			},
		}},
	}}
	cfg := Config{
		References: explainSource{image: Image{Manifest: manifest, Layers: []digest.Digest{layer}}},
		Inventory:  inv,
		Options:    Options{Now: time.Now(), KeepYoungerThan: time.Hour, UploadPurgeAge: time.Hour},
		Workers:    1,
	}
	e, err := ExplainRun(context.Background(), cfg, manifest)
	if err != nil {
		t.Fatal(err)
	}
	if e.Target != manifest || e.Deleted || len(e.Usage.Tags) != 1 {
		t.Errorf("explanation %+v: want %s kept, named by one tag history item", e, manifest)
	}
	if want := []TagRef{{Repository: "ns/app", Tag: "latest"}}; !reflect.DeepEqual(inv.resolved, want) {
		t.Errorf("tags read: %v, want %v", inv.resolved, want)
	}

	cfg.References = plainSource{}
	if _, err := ExplainRun(context.Background(), cfg, manifest); err == nil ||
		!strings.Contains(err.Error(), "cannot say what the image API holds") {
		t.Errorf("with a plain ReferenceSource: %v, want an error", err)
	}
}
