package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"github.com/hardprune/image-registry/storage"
)

func TestMarkerWatcherSeesEachWrite(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	resets := 0
	w := &MarkerWatcher{Driver: drv, OnChange: func() { resets++ }}

	if w.Poll(ctx) || resets != 0 {
		t.Fatal("the first poll, with no marker, reset the cache")
	}
	if w.Poll(ctx) {
		t.Fatal("nothing changed, yet the cache was reset")
	}
	// Both writes of one run in the same instant: the sizes differ, so the change shows even
	// where modification times are coarse.
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := WriteMarker(ctx, drv, MarkerStarted, now); err != nil {
		t.Fatal(err)
	}
	if !w.Poll(ctx) || resets != 1 {
		t.Fatalf("start marker: resets = %d, want 1", resets)
	}
	if w.Poll(ctx) || resets != 1 {
		t.Fatal("an unchanged marker reset the cache again")
	}
	if err := WriteMarker(ctx, drv, MarkerFinished, now); err != nil {
		t.Fatal(err)
	}
	if !w.Poll(ctx) || resets != 2 {
		t.Fatalf("end marker: resets = %d, want 2", resets)
	}
}

func TestMarkerWatcherStartsWithAnExistingMarker(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	if err := WriteMarker(ctx, drv, MarkerFinished, time.Now()); err != nil {
		t.Fatal(err)
	}
	resets := 0
	w := &MarkerWatcher{Driver: drv, OnChange: func() { resets++ }}
	if w.Poll(ctx) || resets != 0 {
		t.Fatal("a marker older than the registry reset its (empty) cache")
	}
}

// TestMarkerIsInvisibleToTheInventory: the marker is outside the trees the inventory walks,
// so a prune never takes it for a blob or a repository, nor fails on it.
func TestMarkerIsInvisibleToTheInventory(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	if err := WriteMarker(ctx, drv, MarkerStarted, time.Now()); err != nil {
		t.Fatal(err)
	}
	inv, err := (&storage.Store{Driver: drv, Workers: 4}).Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Blobs) != 0 || len(inv.Repositories) != 0 {
		t.Errorf("inventory saw the marker: %+v", inv)
	}
	if _, err := storage.ParsePath(storage.PruneMarkerPath()); !errors.Is(err, storage.ErrNotRegistryPath) {
		t.Errorf("ParsePath(marker) = %v, want ErrNotRegistryPath", err)
	}
}
