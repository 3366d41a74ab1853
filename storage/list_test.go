package storage_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/storage"
)

// TestListings: the listings of -list-repositories, -list-blobs and -list-manifests name what
// storage holds, repositories and manifests in order; a nested repository's manifests are not
// its parent's, and names no driver can address are left out.
func TestListings(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	reg := testfixture.New(t, d)
	app := reg.Image("ns/app", "latest", "app", "base", "app-only")
	nested := reg.Image("ns/app/nested", "latest", "nested", "base")
	other := reg.Image("other/db", "v1", "db", "db-only")
	putLink(t, d, storage.ManifestRevisionPath("ns/BadName", app.Manifest)+"/link", app.Manifest)
	store := &storage.Store{Driver: d, Workers: 2, Log: quietLogger()}

	var repos []string
	if err := store.Repositories(ctx, func(name string) error {
		repos = append(repos, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ns/app", "ns/app/nested", "other/db"}; !reflect.DeepEqual(repos, want) {
		t.Errorf("Repositories = %v, want %v", repos, want)
	}

	var blobs []digest.Digest
	if err := store.Blobs(ctx, func(d digest.Digest) error {
		blobs = append(blobs, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	inv, err := store.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var stored []digest.Digest
	for _, b := range inv.Blobs {
		stored = append(stored, b.Digest)
	}
	slices.Sort(blobs)
	if !reflect.DeepEqual(blobs, stored) {
		t.Errorf("Blobs = %v, want the inventory's %v", blobs, stored)
	}

	manifests := func(repo string) ([]digest.Digest, error) {
		var out []digest.Digest
		err := store.Manifests(ctx, repo, func(d digest.Digest) error {
			out = append(out, d)
			return nil
		})
		return out, err
	}
	for repo, want := range map[string][]digest.Digest{"ns/app": {app.Manifest}, "ns/app/nested": {nested.Manifest}, "other/db": {other.Manifest}} {
		if got, err := manifests(repo); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Manifests(%s) = %v, %v; want %v", repo, got, err, want)
		}
	}
	if got, err := manifests("ns/nope"); !errors.Is(err, storage.ErrRepositoryNotFound) ||
		err.Error() != "repository ns/nope is not in storage" ||
		got != nil {
		t.Errorf("Manifests(ns/nope) = %v, %v; want ErrRepositoryNotFound", got, err)
	}

	// The driver keeps the callback's message, not always the error itself.
	if err := store.Blobs(ctx, func(digest.Digest) error { return errors.New("stop") }); err == nil ||
		!strings.Contains(err.Error(), "stop") {
		t.Errorf("Blobs with a failing callback: %v, want its error", err)
	}
}
