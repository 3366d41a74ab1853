package storage_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/storage"
)

// TestTagsNaming: the tags whose current link names a manifest, and those that name it only in
// their index, each once; a nested repository's tags are not its parent's, and an unreadable
// current link names nothing.
func TestTagsNaming(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	reg := testfixture.New(t, d)
	old := reg.Image("ns/app", "latest", "old", "base")
	reg.Image("ns/app", "latest", "new", "base") // latest moves on; its index keeps old
	reg.Tag("ns/app", "v1", old.Manifest)
	reg.Tag("ns/app", "v2", old.Manifest)
	reg.Image("ns/app/nested", "", "nested", "base")
	reg.Tag("ns/app/nested", "v1", old.Manifest) // a tag of another repository
	reg.Tag("ns/app", "broken", old.Manifest)
	if err := d.PutContent(ctx, storage.TagCurrentLinkPath("ns/app", "broken"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	store := &storage.Store{Driver: d, Log: quietLogger()}

	current, indexed, err := store.TagsNaming(ctx, "ns/app", old.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"v1", "v2"}; !reflect.DeepEqual(current, want) {
		t.Errorf("current = %v, want %v", current, want)
	}
	// broken's current link says nothing, so its index entry is all that names the manifest.
	if want := []string{"broken", "latest"}; !reflect.DeepEqual(indexed, want) {
		t.Errorf("indexed = %v, want %v", indexed, want)
	}

	current, indexed, err = store.TagsNaming(ctx, "ns/none", old.Manifest)
	if err != nil || current != nil || indexed != nil {
		t.Errorf("a repository storage does not hold: %v, %v, %v", current, indexed, err)
	}
}
