package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

type staticRefs struct {
	images  []prune.Image
	streams []prune.Stream
}

func (s staticRefs) References(context.Context) (*prune.References, error) {
	b := prune.NewReferenceBuilder()
	for _, i := range s.images {
		b.AddImage(i)
	}
	for _, st := range s.streams {
		b.AddStream(st)
	}
	return b.Build(), nil
}

// drivers returns a driver that runs here for each way of storing that storage.DriverTraits
// tells apart: the two local drivers, and an object store's flat listing.
func drivers(t *testing.T) map[string]driver.StorageDriver {
	return map[string]driver.StorageDriver{
		"inmemory":   inmemory.New(),
		"filesystem": filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 100}),
		// The listing of object stores, over a driver that runs here.
		"flat listing": &storage.ObjectStoreListing{StorageDriver: inmemory.New()},
	}
}

// scenario is the seed procedure in miniature: what is pushed, what the image API still
// names, and what a prune must remove.
type scenario struct {
	reg  *testfixture.Registry
	refs staticRefs
	// kept are images that must still pull after the prune, by repository.
	kept map[string][]prune.Image
	// goneBlobs are the blobs the prune must delete.
	goneBlobs []digest.Digest
	// wantRepos, wantManifests and wantLayers describe storage after the prune.
	wantRepos     []string
	wantManifests map[string][]digest.Digest
	wantLayers    map[string][]digest.Digest
	wantTags      map[string][]string
}

func buildScenario(t *testing.T, d driver.StorageDriver) *scenario {
	reg := testfixture.New(t, d)
	s := &scenario{reg: reg}

	// ns/app: latest moved from img0 to img1 (both in its history); v1 is img2; "old" points
	// at img3, which the tag history dropped and whose Image was deleted by hand.
	img0 := reg.Image("ns/app", "latest", "cfg0", "base", "app0")
	img3 := reg.Image("ns/app", "latest", "cfg3", "base", "app3")
	img1 := reg.Image("ns/app", "latest", "cfg1", "base", "app1")
	img2 := reg.Image("ns/app", "v1", "cfg2", "base", "app2")
	reg.Tag("ns/app", "old", img3.Manifest)
	// A push that died after its first layer.
	partial := reg.Blob("ns/app", []byte("partial layer"), "application/octet-stream")

	// ns/multi: an index of two images, only the index is tagged.
	a := reg.Image("ns/multi", "", "cfg-amd64", "base", "multi-amd64")
	b := reg.Image("ns/multi", "", "cfg-arm64", "base-arm64", "multi-arm64")
	idx := reg.Index("ns/multi", "latest", a, b)

	// ns/gone: its stream and Image were deleted.
	gone := reg.Image("ns/gone", "latest", "cfg-gone", "base", "gone-layer")

	// ns/app/sub: nested below ns/app, never had a stream; its Image is gone too.
	sub := reg.Image("ns/app/sub", "latest", "cfg-sub", "sub-layer")

	// ns/mirror: mounts img1 from ns/app; its stream exists but never named it.
	mirror := reg.Image("ns/mirror", "latest", "cfg1", "base", "app1")

	s.refs = staticRefs{
		images: []prune.Image{img0, img1, img2, a, b, idx, mirror},
		streams: []prune.Stream{
			{Repository: "ns/app", Manifests: testfixture.TagHistory(img1, img0, img2)},
			{Repository: "ns/multi", Manifests: testfixture.TagHistory(idx)},
			{Repository: "ns/mirror"},
		},
	}
	s.kept = map[string][]prune.Image{"ns/app": {img0, img1, img2}, "ns/multi": {idx, a, b}}
	s.goneBlobs = []digest.Digest{
		img3.Manifest, img3.Config, img3.Layers[1], partial.Digest,
		gone.Manifest, gone.Config, gone.Layers[1],
		sub.Manifest, sub.Config, sub.Layers[0],
	}
	// ns/mirror loses every link; an empty directory is not a repository.
	s.wantRepos = []string{"ns/app", "ns/multi"}
	s.wantManifests = map[string][]digest.Digest{
		"ns/app":    {img0.Manifest, img1.Manifest, img2.Manifest},
		"ns/multi":  {idx.Manifest, a.Manifest, b.Manifest},
		"ns/mirror": nil,
	}
	s.wantLayers = map[string][]digest.Digest{
		"ns/app": {
			img0.Config,
			img1.Config,
			img2.Config,
			img0.Layers[0],
			img0.Layers[1],
			img1.Layers[1],
			img2.Layers[1],
		},
		"ns/multi":  {a.Config, b.Config, a.Layers[0], a.Layers[1], b.Layers[0], b.Layers[1]},
		"ns/mirror": nil,
	}
	s.wantTags = map[string][]string{"ns/app": {"latest", "v1"}, "ns/multi": {"latest"}, "ns/mirror": nil}
	return s
}

func runPrune(t *testing.T, s *scenario, store *storage.Store, dryRun bool, log *bytes.Buffer) (prune.Summary, string) {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(log)
	logger.SetLevel(logrus.InfoLevel)
	cfg := prune.Config{
		References: s.refs,
		Inventory:  store,
		Options: prune.Options{
			// Everything in the fixture was written just now; measure ages from two hours on.
			Now:             time.Now().Add(2 * time.Hour),
			KeepYoungerThan: time.Hour,
			UploadPurgeAge:  168 * time.Hour,
		},
		Workers: 4,
		Log:     logger,
	}
	cfg.Remover = store
	if dryRun {
		cfg.Remover = prune.DryRun{}
	}
	_, sum, err := prune.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	var out bytes.Buffer
	prune.WriteSummary(&out, sum)
	return sum, out.String()
}

func sizeOf(inv *prune.Inventory, ds []digest.Digest) int64 {
	var n int64
	for _, b := range inv.Blobs {
		for _, d := range ds {
			if b.Digest == d {
				n += b.Size
			}
		}
	}
	return n
}

func TestPruneOnDrivers(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := buildScenario(t, d)
			store := &storage.Store{Driver: d, Workers: 4, Log: logrus.New()}
			before, err := store.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes := sizeOf(before, s.goneBlobs)

			// check: the candidates are logged, the summary is right, nothing changes.
			var log bytes.Buffer
			sum, out := runPrune(t, s, store, true, &log)
			wantOut := fmt.Sprintf(
				"Would delete %d blobs\nWould free up %s of disk space\nUse -prune=delete to actually delete the data\n"+
					"Would delete 2 repositories\nWould delete 2 manifest links\nWould delete 2 tags\nWould delete 1 tag index entries\n"+
					"Would delete 6 layer links\nWould delete 0 uploads (0 B)\n",
				len(s.goneBlobs),
				prune.FormatSize(wantBytes),
			)
			if out != wantOut {
				t.Errorf("check output:\n%s\nwant:\n%s", out, wantOut)
			}
			if sum.Bytes[prune.KindBlob] != wantBytes {
				t.Errorf("check would free %d bytes, want %d", sum.Bytes[prune.KindBlob], wantBytes)
			}
			for _, dg := range s.goneBlobs {
				if !strings.Contains(log.String(), "Would delete blob: "+dg.String()) {
					t.Errorf("check log lacks %q", "Would delete blob: "+dg.String())
				}
			}
			for _, want := range []string{"Would delete repository: ns/gone", "Would delete repository: ns/app/sub", "Would delete manifest link: ns/app@"} {
				if !strings.Contains(log.String(), want) {
					t.Errorf("check log lacks %q", want)
				}
			}
			after, err := store.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("check changed storage")
			}

			// delete: the same counts, in the past tense; storage is exactly as expected.
			log.Reset()
			_, out = runPrune(t, s, store, false, &log)
			wantOut = fmt.Sprintf("Deleted %d blobs\nFreed up %s of disk space\n"+
				"Deleted 2 repositories\nDeleted 2 manifest links\nDeleted 2 tags\nDeleted 1 tag index entries\n"+
				"Deleted 6 layer links\nDeleted 0 uploads (0 B)\n",
				len(s.goneBlobs), prune.FormatSize(wantBytes))
			if out != wantOut {
				t.Errorf("delete output:\n%s\nwant:\n%s", out, wantOut)
			}
			after, err = store.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			assertStorage(t, s, before, after)
			for repo, imgs := range s.kept {
				for _, img := range imgs {
					if err := s.reg.Pull(repo, img); err != nil {
						t.Errorf("pull after prune: %v", err)
					}
				}
			}

			// A second run finds nothing more.
			log.Reset()
			sum, _ = runPrune(t, s, store, false, &log)
			if sum.Total() != 0 {
				t.Errorf("second run deleted %+v, want nothing", sum)
			}
		})
	}
}

func assertStorage(t *testing.T, s *scenario, before, after *prune.Inventory) {
	t.Helper()
	gone := map[digest.Digest]bool{}
	for _, d := range s.goneBlobs {
		gone[d] = true
	}
	var wantBlobs, gotBlobs []digest.Digest
	for _, b := range before.Blobs {
		if !gone[b.Digest] {
			wantBlobs = append(wantBlobs, b.Digest)
		}
	}
	for _, b := range after.Blobs {
		gotBlobs = append(gotBlobs, b.Digest)
	}
	if !reflect.DeepEqual(gotBlobs, wantBlobs) {
		t.Errorf("blobs after prune: got %d, want %d", len(gotBlobs), len(wantBlobs))
	}
	var repos []string
	for _, r := range after.Repositories {
		repos = append(repos, r.Name)
		if got, want := linkDigests(r.Manifests), sorted(s.wantManifests[r.Name]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s manifest links: got %v, want %v", r.Name, got, want)
		}
		if got, want := linkDigests(r.Layers), sorted(s.wantLayers[r.Name]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s layer links: got %v, want %v", r.Name, got, want)
		}
		var tags []string
		for _, tg := range r.Tags {
			tags = append(tags, tg.Name)
		}
		if !reflect.DeepEqual(tags, s.wantTags[r.Name]) {
			t.Errorf("%s tags: got %v, want %v", r.Name, tags, s.wantTags[r.Name])
		}
	}
	if !reflect.DeepEqual(repos, s.wantRepos) {
		t.Errorf("repositories after prune: got %v, want %v", repos, s.wantRepos)
	}
}

func linkDigests(ls []prune.Link) []digest.Digest {
	var out []digest.Digest
	for _, l := range ls {
		out = append(out, l.Digest)
	}
	return sorted(out)
}

func sorted(ds []digest.Digest) []digest.Digest {
	if len(ds) == 0 {
		return nil
	}
	out := append([]digest.Digest(nil), ds...)
	slices.Sort(out)
	// de-duplicate: shared config and layer digests appear once in storage
	return slices.Compact(out)
}

// TestInventorySkipsOddEntries puts files in storage that the registry never writes: they are
// logged and skipped, and nothing fails.
func TestInventorySkipsOddEntries(t *testing.T) {
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) { testInventorySkipsOddEntries(t, workers) })
	}
}

func testInventorySkipsOddEntries(t *testing.T, workers int) {
	root := t.TempDir()
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100})
	reg := testfixture.New(t, d)
	img := reg.Image("ns/app", "latest", "cfg", "layer")
	odd := []string{
		"docker/registry/v2/blobs/sha256/zz/notadigest/data",
		"docker/registry/v2/blobs/md5/ab/abcdef/data",
		"docker/registry/v2/blobs/sha256/00/stray-file",
		"docker/registry/v2/repositories/ns/app/_layers/sha256/short/link",
		"docker/registry/v2/repositories/ns/app/_manifests/revisions/sha256/.tmp123",
		"docker/registry/v2/repositories/BAD NAME/_layers/sha256/" + strings.Repeat("a", 64) + "/link",
		"docker/registry/v2/repositories/ns/app/_weird/x",
		"docker/registry/v2/repositories/stray-file",
	}
	for _, p := range odd {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A tag whose current link holds garbage.
	if err := os.WriteFile(filepath.Join(root, "docker/registry/v2/repositories/ns/app/_manifests/tags/latest/current/link"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&log)
	store := &storage.Store{Driver: d, Log: logger, Workers: workers}
	inv, err := store.Inventory(context.Background())
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	if len(inv.Blobs) != 3 {
		t.Errorf("blobs: got %d, want 3 (manifest, config, layer)", len(inv.Blobs))
	}
	if len(inv.Repositories) != 1 || inv.Repositories[0].Name != "ns/app" {
		t.Fatalf("repositories: got %+v", inv.Repositories)
	}
	r := inv.Repositories[0]
	if len(r.Manifests) != 1 || r.Manifests[0].Digest != img.Manifest || len(r.Layers) != 2 {
		t.Errorf("ns/app: got %+v", r)
	}
	if len(r.Tags) != 1 || r.Tags[0].State != prune.TagUnread {
		t.Fatalf("tags: got %+v, want one, its current link not read yet", r.Tags)
	}
	if err := store.ResolveTags(context.Background(), inv, []prune.TagRef{{Repository: "ns/app", Tag: "latest"}, {Repository: "ns/none", Tag: "x"}}); err != nil {
		t.Fatal(err)
	}
	if tg := inv.Tag(prune.TagRef{Repository: "ns/app", Tag: "latest"}); tg.State != prune.TagRead || tg.Current != "" {
		t.Errorf("tag with a garbage link: got %+v, want a known, empty Current", tg)
	}
	if n := strings.Count(log.String(), "skipping"); n != len(odd) {
		t.Errorf("logged %d skips, want %d:\n%s", n, len(odd), log.String())
	}
}

func TestInventoryOfEmptyStorage(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			inv, err := (&storage.Store{Driver: d}).Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Blobs) != 0 || len(inv.Repositories) != 0 {
				t.Errorf("got %+v, want empty", inv)
			}
		})
	}
}
