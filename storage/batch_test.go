package storage_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// TestS3DeletesInBatches: on a real S3 server (versitygw), the sweep deletes links, blobs and
// whole repositories with one DeleteObjects request per prune.BatchSize keys, on the configured
// driver's own client, listing nothing but the one repository holding a file the inventory
// skipped, which goes by prefix; what the plan does not name stays.
func TestS3DeletesInBatches(t *testing.T) {
	ctx := context.Background()
	s3 := harness.StartS3T(t)
	upstream, _ := url.Parse(s3.Endpoint)
	forward := httputil.NewSingleHostReverseProxy(upstream)
	var (
		mu       sync.Mutex
		requests []string
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.RawQuery)
		mu.Unlock()
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	drv, err := storage.OpenDriver(ctx, configuration.Storage{"s3aws": s3.DriverParameters(proxy.URL)}, "")
	if err != nil {
		t.Fatal(err)
	}

	// Written straight into versitygw's posix backend: a thousand PUTs would only slow the test.
	put := func(path string) {
		file := filepath.Join(s3.BucketDir(), strings.TrimPrefix(path, "/"))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var objs []prune.Object
	for i := range prune.BatchSize + 1 {
		d := digest.FromString(fmt.Sprint("layer", i))
		put(storage.LayerLinkPath("ns/app", d))
		objs = append(objs, prune.Object{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: d})
	}
	for i := range 3 {
		d := digest.FromString(fmt.Sprint("blob", i))
		put(storage.BlobDataPath(d))
		objs = append(objs, prune.Object{Kind: prune.KindBlob, Digest: d, Size: 1})
	}
	kept := digest.FromString("kept")
	put(storage.BlobDataPath(kept))
	put(storage.LayerLinkPath("ns/app", kept))

	// A repository known key by key, and one with a file the registry does not write.
	gone := digest.FromString("gone")
	put(storage.ManifestRevisionLinkPath("ns/gone", gone))
	put(storage.LayerLinkPath("ns/gone", kept))
	put(storage.TagCurrentLinkPath("ns/gone", "v1"))
	put(storage.TagIndexEntryLinkPath("ns/gone", "v1", gone))
	put(storage.LayerLinkPath("ns/odd", kept))
	put(storage.RepositoryPath("ns/odd") + "/_layers/junk")
	objs = append(objs, prune.Object{Kind: prune.KindRepository, Repository: "ns/gone"},
		prune.Object{Kind: prune.KindRepository, Repository: "ns/odd"})
	// A tag of a repository that stays: its current link, then its index.
	put(storage.TagCurrentLinkPath("ns/app", "old"))
	put(storage.TagIndexEntryLinkPath("ns/app", "old", gone))
	put(storage.TagIndexEntryLinkPath("ns/app", "old", kept))
	objs = append(objs, prune.Object{Kind: prune.KindTag, Repository: "ns/app", Name: "old"})

	store := &storage.Store{Driver: drv, Workers: 4}
	if _, err := store.Inventory(ctx); err != nil { // what it walks, the sweep deletes key by key
		t.Fatal(err)
	}
	mu.Lock()
	requests = nil
	mu.Unlock()
	remover := store.Remover()
	if _, ok := remover.(prune.BatchRemover); !ok {
		t.Fatalf("the s3aws store's remover is a %T, not a prune.BatchRemover", remover)
	}
	sum, err := prune.Sweep(ctx, prune.NewPlan(objs...), remover, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count[prune.KindLayerLink] != prune.BatchSize+1 || sum.Count[prune.KindBlob] != 3 ||
		sum.Count[prune.KindRepository] != 2 || sum.Count[prune.KindTag] != 1 {
		t.Errorf("summary %s", sum)
	}
	mu.Lock()
	got := strings.Join(requests, "\n")
	mu.Unlock()
	lists, deletes := strings.Count(got, "GET list-type=2"), strings.Count(got, "POST delete=")
	if lists != 1 || deletes != 7 || strings.Count(got, "\n")+1 != lists+deletes {
		t.Errorf("requests of the sweep:\n%s\nwant one listing (ns/odd) and seven DeleteObjects "+
			"(ns/gone, ns/odd, the tag's current link, then its index, two of links, one of blobs)", got)
	}

	inv, err := store.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := drv.Walk(ctx, storage.RepositoriesPath+"/ns", func(fi driver.FileInfo) error {
		if !strings.HasPrefix(fi.Path(), storage.RepositoryPath("ns/app")) ||
			strings.Contains(fi.Path(), "/_manifests/tags/") {
			t.Errorf("%s is left", fi.Path())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(inv.Blobs) != 1 || inv.Blobs[0].Digest != kept || len(inv.Repositories) != 1 ||
		len(inv.Repositories[0].Layers) != 1 || inv.Repositories[0].Layers[0].Digest != kept {
		t.Errorf("after the sweep: %d blobs, repositories %+v; want only the kept blob and its link",
			len(inv.Blobs), inv.Repositories)
	}
}
