package storage_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

func TestReadManifest(t *testing.T) {
	ctx := context.Background()
	for name, drv := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			reg := testfixture.New(t, drv)
			a := reg.Image("ns/app", "", "cfg-a", "layer-1", "layer-2")
			b := reg.Image("ns/app", "", "cfg-b", "layer-3")
			inner := reg.Index("ns/app", "", a, b)
			outer := reg.Index("ns/app", "latest", inner)
			store := &storage.Store{Driver: drv}

			for _, want := range []prune.Image{a, b, {Manifest: inner.Manifest, Children: inner.Children}, {Manifest: outer.Manifest, Children: outer.Children}} {
				got, err := store.ReadManifest(ctx, want.Manifest)
				if err != nil {
					t.Fatalf("%s: %v", want.Manifest, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("read %s:\n got %+v\nwant %+v", want.Manifest, got, want)
				}
			}

			if _, err := store.ReadManifest(ctx, digest.FromString("never pushed")); !errors.Is(
				err,
				prune.ErrManifestNotStored,
			) {
				t.Errorf("a manifest storage lacks: %v, want ErrManifestNotStored", err)
			}
			// A layer is a blob, but not a manifest.
			if _, err := store.ReadManifest(ctx, a.Layers[0]); !errors.Is(err, prune.ErrManifestUnreadable) {
				t.Errorf("a layer read as a manifest: %v, want ErrManifestUnreadable", err)
			}
			// A blob whose content does not match its digest (corruption) is not trusted.
			if err := drv.PutContent(ctx, storage.BlobDataPath(b.Manifest), []byte(`{"schemaVersion":2}`)); err != nil {
				t.Fatal(err)
			}
			if _, err := store.ReadManifest(ctx, b.Manifest); !errors.Is(err, prune.ErrManifestUnreadable) ||
				!strings.Contains(err.Error(), "digest") {
				t.Errorf("a corrupt manifest: %v, want ErrManifestUnreadable", err)
			}
			// A huge blob is not read whole.
			huge := []byte(`{"layers":[` + strings.Repeat(" ", 5<<20) + `]}`)
			d := digest.FromBytes(huge)
			if err := drv.PutContent(ctx, storage.BlobDataPath(d), huge); err != nil {
				t.Fatal(err)
			}
			if _, err := store.ReadManifest(ctx, d); !errors.Is(err, prune.ErrManifestUnreadable) {
				t.Errorf("a 5 MiB blob: %v, want ErrManifestUnreadable", err)
			}
		})
	}
}
