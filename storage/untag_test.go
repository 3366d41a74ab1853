package storage_test

import (
	"context"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// recorder is a Remover that records what it is asked to delete and passes it on.
type recorder struct {
	next prune.Remover
	got  []string
}

func (r *recorder) Delete(ctx context.Context, o prune.Object) error {
	r.got = append(r.got, o.String())
	return r.next.Delete(ctx, o)
}

// TestUntaggingDeletesTagsBeforeTheManifestLink: deleting a manifest link through Untagging
// removes the tags pointing at it and its other tags' index entries first, as the registry's
// DELETE of a manifest does, and leaves the other manifests' tags alone.
func TestUntaggingDeletesTagsBeforeTheManifestLink(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	reg := testfixture.New(t, d)
	old := reg.Image("ns/app", "latest", "old", "base")
	cur := reg.Image("ns/app", "latest", "new", "base") // latest's index keeps old
	reg.Tag("ns/app", "v1", old.Manifest)
	store := &storage.Store{Driver: d, Log: quietLogger()}
	rec := &recorder{next: store}

	link := prune.Object{Kind: prune.KindManifestLink, Repository: "ns/app", Digest: old.Manifest}
	if err := store.Untagging(rec).Delete(ctx, link); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tag ns/app:v1",
		"tag index entry ns/app:latest@" + old.Manifest.String(),
		"manifest link ns/app@" + old.Manifest.String(),
	}
	if len(rec.got) != len(want) {
		t.Fatalf("deleted %q, want %q", rec.got, want)
	}
	for i := range want {
		if rec.got[i] != want[i] {
			t.Errorf("deletion %d: %q, want %q", i, rec.got[i], want[i])
		}
	}
	for p, wantThere := range map[string]bool{
		storage.TagPath("ns/app", "v1"):                                false,
		storage.TagIndexEntryPath("ns/app", "latest", old.Manifest):    false,
		storage.ManifestRevisionPath("ns/app", old.Manifest):           false,
		storage.TagCurrentLinkPath("ns/app", "latest"):                 true,
		storage.TagIndexEntryPath("ns/app", "latest", cur.Manifest):    true,
		storage.ManifestRevisionLinkPath("ns/app", cur.Manifest):       true,
		storage.LayerLinkPath("ns/app", old.Layers[len(old.Layers)-1]): true,
	} {
		if exists(t, d, p) != wantThere {
			t.Errorf("%s: there = %v, want %v", p, !wantThere, wantThere)
		}
	}

	// Other kinds pass through untouched.
	rec.got = nil
	layer := prune.Object{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: old.Layers[len(old.Layers)-1]}
	if err := store.Untagging(rec).Delete(ctx, layer); err != nil || len(rec.got) != 1 || rec.got[0] != layer.String() {
		t.Errorf("layer link: %v, deleted %q", err, rec.got)
	}
}
