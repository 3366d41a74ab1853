package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// hasDirectories tells the drivers that keep directories (object stores have none).
func hasDirectories(name string) bool { return name != "flat listing" }

func pruneDelete(t *testing.T, store *storage.Store, refs staticRefs, workers int) prune.Summary {
	t.Helper()
	_, sum, err := prune.Run(context.Background(), prune.Config{
		References: refs,
		Inventory:  store,
		Remover:    store,
		Options: prune.Options{
			Now:             time.Now().Add(2 * time.Hour),
			KeepYoungerThan: time.Hour,
			UploadPurgeAge:  168 * time.Hour,
		},
		Workers: workers,
		Log:     store.Log,
		// These registries are small and mostly garbage by design.
		MaxDeleteRatio: 1,
	})
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	return sum
}

// filesBelow counts the files below dir.
func filesBelow(t *testing.T, d driver.StorageDriver, dir string) int {
	t.Helper()
	n := 0
	err := d.Walk(context.Background(), dir, func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			n++
		}
		return nil
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		t.Fatal(err)
	}
	return n
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func exists(t *testing.T, d driver.StorageDriver, p string) bool {
	t.Helper()
	_, err := d.Stat(context.Background(), p)
	var notFound driver.PathNotFoundError
	if errors.As(err, &notFound) {
		return false
	}
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return true
}

// TestRemovedRepositoriesLeaveNoEmptyDirectories: removing ns/parentgone and its nested
// ns/parentgone/kid leaves neither their directory nor an emptied ns; directories that still
// hold something stay.
func TestRemovedRepositoriesLeaveNoEmptyDirectories(t *testing.T) {
	for _, workers := range []int{1, 4} {
		for name, d := range drivers(t) {
			t.Run(name, func(t *testing.T) {
				reg := testfixture.New(t, d)
				reg.Image("ns/parentgone", "latest", "cfg-p", "layer-p")
				reg.Image("ns/parentgone/kid", "latest", "cfg-k", "layer-k")
				reg.Image("deep/a/b/c", "latest", "cfg-d", "layer-d")
				kept := reg.Image("keep/app", "latest", "cfg-app", "layer-app")
				reg.Image("keep/gone", "latest", "cfg-gone", "layer-gone")
				refs := staticRefs{
					images:  []prune.Image{kept},
					streams: []prune.Stream{{Repository: "keep/app", Manifests: testfixture.TagHistory(kept)}},
				}

				store := &storage.Store{Driver: d, Workers: workers, Log: quietLogger()}
				if sum := pruneDelete(t, store, refs, workers); sum.Count[prune.KindRepository] != 4 {
					t.Fatalf("deleted %d repositories, want 4", sum.Count[prune.KindRepository])
				}
				for _, p := range []string{"ns/parentgone/kid", "keep/gone", "deep/a/b/c"} {
					if exists(t, d, storage.RepositoryPath(p)) {
						t.Errorf("%s is still there", storage.RepositoryPath(p))
					}
				}
				if n := filesBelow(t, d, storage.RepositoryPath("ns")); n != 0 {
					t.Errorf("%d files left below ns", n)
				}
				if hasDirectories(name) {
					for _, p := range []string{"ns/parentgone", "ns", "deep/a/b", "deep/a", "deep"} {
						if exists(t, d, storage.RepositoryPath(p)) {
							t.Errorf("the emptied directory %s is still there", storage.RepositoryPath(p))
						}
					}
				}
				for _, p := range []string{storage.RepositoriesPath, storage.RepositoryPath("keep"), storage.RepositoryPath("keep/app")} {
					if !exists(t, d, p) {
						t.Errorf("%s was removed", p)
					}
				}
				if err := reg.Pull("keep/app", kept); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestRemovingARepositoryKeepsNonEmptyParents: a parent that holds a stray file, or a
// repository nested below one that goes, stays.
func TestRemovingARepositoryKeepsNonEmptyParents(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			reg := testfixture.New(t, d)
			reg.Image("ns/gone", "latest", "cfg-g", "layer-g")
			reg.Image("ns2/parent", "latest", "cfg-p", "layer-p")
			kid := reg.Image("ns2/parent/kid", "latest", "cfg-k", "layer-k")
			stray := path.Join(storage.RepositoryPath("ns"), "notes.txt")
			if err := d.PutContent(ctx, stray, []byte("an administrator's file")); err != nil {
				t.Fatal(err)
			}
			refs := staticRefs{
				images:  []prune.Image{kid},
				streams: []prune.Stream{{Repository: "ns2/parent/kid", Manifests: testfixture.TagHistory(kid)}},
			}
			var log bytes.Buffer
			logger := logrus.New()
			logger.SetOutput(&log)
			store := &storage.Store{Driver: d, Workers: 4, Log: logger}
			if sum := pruneDelete(t, store, refs, 4); sum.Count[prune.KindRepository] != 2 {
				t.Fatalf("deleted %d repositories, want 2", sum.Count[prune.KindRepository])
			}
			if !exists(t, d, stray) {
				t.Error("the stray file next to a removed repository was removed")
			}
			if exists(t, d, storage.RepositoryPath("ns/gone")) {
				t.Error("ns/gone is still there")
			}
			if exists(t, d, storage.RepositoryDataPath("ns2/parent", "_manifests")) {
				t.Error("ns2/parent's data is still there")
			}
			if err := reg.Pull("ns2/parent/kid", kid); err != nil {
				t.Errorf("the nested repository: %v", err)
			}
		})
	}
}

// putLink writes a link file, as a registry would.
func putLink(t *testing.T, d driver.StorageDriver, p string, dgst digest.Digest) {
	t.Helper()
	if err := d.PutContent(context.Background(), p, []byte(dgst.String())); err != nil {
		t.Fatalf("writing %s: %v", p, err)
	}
}

// TestInvalidRepositoryNameIsPruned: a repository whose name distribution refuses (ns/BadName)
// is logged once, not once per file, and goes like any repository without an image stream;
// files that are no repository at all stay, warned about.
func TestInvalidRepositoryNameIsPruned(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			reg := testfixture.New(t, d)
			img := reg.Image("ns/app", "latest", "cfg", "base", "app")
			orphan := reg.Blob("ns/app", []byte("only ns/BadName links this"), "application/octet-stream")
			// What a registry with other name rules (or a hand) left.
			putLink(t, d, storage.ManifestRevisionLinkPath("ns/BadName", img.Manifest), img.Manifest)
			putLink(t, d, storage.LayerLinkPath("ns/BadName", img.Layers[0]), img.Layers[0])
			putLink(t, d, storage.LayerLinkPath("ns/BadName", orphan.Digest), orphan.Digest)
			putLink(t, d, storage.TagCurrentLinkPath("ns/BadName", "latest"), img.Manifest)
			putLink(t, d, storage.TagIndexEntryLinkPath("ns/BadName", "latest", img.Manifest), img.Manifest)
			putLink(t, d, storage.LayerLinkPath("UPPER", img.Layers[1]), img.Layers[1])
			strays := []string{
				storage.RepositoriesPath + "/ns/stray-file",
				storage.RepositoriesPath + "/ns/Odd/no-data-dir",
			}
			for _, p := range strays {
				if err := d.PutContent(ctx, p, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			// ns/app's blobs are referenced by it; the orphan blob only through ns/BadName.
			refs := staticRefs{
				images:  []prune.Image{img},
				streams: []prune.Stream{{Repository: "ns/app", Manifests: testfixture.TagHistory(img)}},
			}

			var log bytes.Buffer
			logger := logrus.New()
			logger.SetOutput(&log)
			store := &storage.Store{Driver: d, Workers: 4, Log: logger}
			inv, err := store.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range inv.Repositories {
				names = append(names, r.Name)
				if r.Name == "ns/BadName" &&
					(!r.InvalidName || len(r.Manifests) != 1 || len(r.Layers) != 2 || len(r.Tags) != 1) {
					t.Errorf("ns/BadName: %+v", r)
				}
			}
			if strings.Join(names, " ") != "UPPER ns/BadName ns/app" {
				t.Fatalf("repositories %v, want [UPPER ns/BadName ns/app]", names)
			}
			if n := strings.Count(log.String(), "invalid name"); n != 2 {
				t.Errorf("%d invalid-name warnings, want one per repository (2):\n%s", n, log.String())
			}
			for _, p := range strays {
				if !strings.Contains(log.String(), p) {
					t.Errorf("the stray file %s is not warned about:\n%s", p, log.String())
				}
			}

			log.Reset()
			sum := pruneDelete(t, store, refs, 4)
			if sum.Count[prune.KindRepository] != 2 || sum.Count[prune.KindBlob] != 1 {
				t.Errorf(
					"deleted %d repositories and %d blobs, want 2 and 1 (the orphan)",
					sum.Count[prune.KindRepository],
					sum.Count[prune.KindBlob],
				)
			}
			for _, r := range []string{"ns/BadName", "UPPER"} {
				if exists(t, d, storage.RepositoryPath(r)) {
					t.Errorf("%s is still there", r)
				}
			}
			for _, p := range strays {
				if !exists(t, d, p) {
					t.Errorf("the stray file %s was removed", p)
				}
			}
			if err := reg.Pull("ns/app", img); err != nil {
				t.Error(err)
			}
			log.Reset()
			if _, err := store.Inventory(ctx); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(log.String(), "invalid name") {
				t.Errorf("the next inventory still warns:\n%s", log.String())
			}
		})
	}
}

// TestInvalidNameYoungDataStays: an invalid-named repository holding data younger than the
// grace period is kept (its old links go one by one, as for any repository without a stream).
func TestInvalidNameYoungDataStays(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			reg := testfixture.New(t, d)
			img := reg.Image("ns/app", "latest", "cfg", "base")
			putLink(t, d, storage.LayerLinkPath("ns/BadName", img.Layers[0]), img.Layers[0])
			store := &storage.Store{Driver: d, Workers: 2, Log: quietLogger()}
			_, sum, err := prune.Run(context.Background(), prune.Config{
				References: staticRefs{
					images:  []prune.Image{img},
					streams: []prune.Stream{{Repository: "ns/app", Manifests: testfixture.TagHistory(img)}},
				},
				Inventory: store, Remover: store, Workers: 2, Log: store.Log,
				Options: prune.Options{Now: time.Now(), KeepYoungerThan: time.Hour, UploadPurgeAge: 168 * time.Hour},
			})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Total() != 0 || !exists(t, d, storage.LayerLinkPath("ns/BadName", img.Layers[0])) {
				t.Errorf("young data of ns/BadName: deleted %+v", sum)
			}
		})
	}
}

// TestStorageWithoutRepositories: blobs without a repositories directory (a wrong
// rootdirectory, most often) are said once and recorded for the interlock.
func TestStorageWithoutRepositories(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var log bytes.Buffer
			logger := logrus.New()
			logger.SetOutput(&log)
			store := &storage.Store{Driver: d, Workers: 4, Log: logger, Root: "/srv/registry"}

			// Empty storage: nothing below the root at all.
			inv, err := store.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !inv.RepositoriesMissing {
				t.Error("empty storage: RepositoriesMissing is false")
			}

			dgst := digest.FromString("lonely blob")
			if err := d.PutContent(ctx, storage.BlobDataPath(dgst), []byte("lonely blob")); err != nil {
				t.Fatal(err)
			}
			log.Reset()
			inv, err = store.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !inv.RepositoriesMissing || len(inv.Blobs) != 1 {
				t.Errorf("blobs only: RepositoriesMissing=%v, %d blobs", inv.RepositoriesMissing, len(inv.Blobs))
			}
			want := "storage has no repositories/ directory below /srv/registry/docker/registry/v2: is rootdirectory right?"
			if n := strings.Count(log.String(), want); n != 1 {
				t.Errorf("%d warnings %q, want 1:\n%s", n, want, log.String())
			}

			testfixture.New(t, d).Image("ns/app", "latest", "cfg", "layer")
			log.Reset()
			inv, err = store.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if inv.RepositoriesMissing || strings.Contains(log.String(), "no repositories/") {
				t.Errorf("with a repository: RepositoriesMissing=%v, log:\n%s", inv.RepositoriesMissing, log.String())
			}
		})
	}
}
