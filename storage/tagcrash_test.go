package storage_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// TestInterruptedTagDeletion leaves a tag half-deleted, as a run killed inside the removal of
// a tag directory does (which half depends on the order the file system lists it), and runs
// a prune over it: the remains go, and no link is left pointing at a deleted blob.
func TestInterruptedTagDeletion(t *testing.T) {
	for _, left := range []string{"current link only", "index only"} {
		for name, d := range drivers(t) {
			t.Run(left+"/"+name, func(t *testing.T) {
				ctx := context.Background()
				reg := testfixture.New(t, d)
				kept := reg.Image("ns/app", "latest", "cfg-kept", "base", "kept")
				gone := reg.Image("ns/app", "t0", "cfg-gone", "base", "gone")
				switch left {
				case "current link only":
					removePath(t, d, storage.TagIndexEntryPath("ns/app", "t0", gone.Manifest))
				case "index only":
					removePath(t, d, storage.TagCurrentLinkPath("ns/app", "t0"))
				}
				s := &scenario{reg: reg, refs: staticRefs{
					images:  []prune.Image{kept},
					streams: []prune.Stream{{Repository: "ns/app", Manifests: testfixture.TagHistory(kept)}},
				}}
				store := &storage.Store{Driver: d, Workers: 2, Log: logrus.New()}
				var log bytes.Buffer
				sum, _ := runPrune(t, s, store, false, &log)
				if sum.Count[prune.KindTag] != 1 || sum.Count[prune.KindManifestLink] != 1 ||
					sum.Count[prune.KindBlob] != 3 {
					t.Errorf("deleted %+v, want the tag, one manifest link and 3 blobs", sum)
				}
				inv, err := store.Inventory(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(inv.Repositories) != 1 {
					t.Fatalf("repositories: %+v", inv.Repositories)
				}
				var tags []string
				for _, tg := range inv.Repositories[0].Tags {
					tags = append(tags, tg.Name)
				}
				if strings.Join(tags, ",") != "latest" {
					t.Errorf("tags after the prune: %v, want [latest]", tags)
				}
				stored := map[digest.Digest]bool{}
				for _, b := range inv.Blobs {
					stored[b.Digest] = true
				}
				if stored[gone.Manifest] {
					t.Errorf("the manifest of the half-deleted tag is still stored")
				}
				if err := reg.Pull("ns/app", kept); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func removePath(t *testing.T, d driver.StorageDriver, p string) {
	t.Helper()
	if err := d.Delete(context.Background(), p); err != nil {
		t.Fatalf("removing %s: %v", p, err)
	}
}

// recordingDriver records the paths deleted, in order.
type recordingDriver struct {
	driver.StorageDriver
	mu      sync.Mutex
	deleted []string
}

func (r *recordingDriver) Delete(ctx context.Context, p string) error {
	r.mu.Lock()
	r.deleted = append(r.deleted, p)
	r.mu.Unlock()
	return r.StorageDriver.Delete(ctx, p)
}

// TestDeleteTagRemovesCurrentLinkFirst: the order that makes an interrupted tag deletion
// harmless (see DeleteTag).
func TestDeleteTagRemovesCurrentLinkFirst(t *testing.T) {
	d := &recordingDriver{StorageDriver: inmemory.New()}
	reg := testfixture.New(t, d.StorageDriver)
	reg.Image("ns/app", "t0", "cfg", "layer")
	store := &storage.Store{Driver: d}
	if err := store.Delete(context.Background(), prune.Object{Kind: prune.KindTag, Repository: "ns/app", Name: "t0"}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/docker/registry/v2/repositories/ns/app/_manifests/tags/t0/current",
		"/docker/registry/v2/repositories/ns/app/_manifests/tags/t0",
	}
	if strings.Join(d.deleted, " ") != strings.Join(want, " ") {
		t.Errorf("deleted %v, want %v", d.deleted, want)
	}
}
