package storage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/storage"
)

// TestS3RangedInventoryIsTheFlatOne: on a real S3 server (versitygw), the inventory listed in
// key ranges at once through the s3aws driver's Walk is the one flat listing's, names that
// sort before '/' and namespaces that are prefixes of others included, at a page more per
// range at most.
func TestS3RangedInventoryIsTheFlatOne(t *testing.T) {
	ctx := context.Background()
	s3 := harness.StartS3T(t)
	// Written straight into versitygw's posix backend, through the filesystem driver.
	storage.WriteRangeStore(t, filesystem.New(filesystem.DriverParameters{RootDirectory: s3.BucketDir(), MaxThreads: 100}))

	upstream, _ := url.Parse(s3.Endpoint)
	forward := httputil.NewSingleHostReverseProxy(upstream)
	var lists atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			lists.Add(1)
		}
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	drv, err := storage.OpenDriver(ctx, configuration.Storage{"s3aws": s3.DriverParameters(proxy.URL)}, "")
	if err != nil {
		t.Fatal(err)
	}

	flat := &storage.Store{Driver: drv, Workers: 1, Log: quietLogger()}
	want, err := flat.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flatLists := lists.Swap(0)
	if len(want.Blobs) != 300 || len(want.Repositories) < 100 {
		t.Fatalf("flat inventory: %d blobs, %d repositories", len(want.Blobs), len(want.Repositories))
	}

	ranged := &storage.Store{Driver: drv, Workers: 4, Log: quietLogger()}
	// A split after 5 keys: the store holds fewer than two pages of 1000.
	storage.SplitAfter(ranged, 5)
	got, err := ranged.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ranged inventory differs from the flat one:\n got %+v\nwant %+v", got, want)
	}
	if g, w := storage.WalkedRepositories(ranged), storage.WalkedRepositories(flat); !reflect.DeepEqual(g, w) {
		t.Errorf("ranged walked repositories %+v, flat %+v", g, w)
	}
	// Each of at most 2 × 8 ranges lists a page or two here; one more lists the namespaces.
	rangedLists := lists.Load()
	t.Logf("flat listing: %d requests; ranged: %d", flatLists, rangedLists)
	if rangedLists <= flatLists+2 || rangedLists > flatLists+2*8+1 {
		t.Errorf("ranged listing made %d requests, the flat one %d: want more (it split), at most %d",
			rangedLists, flatLists, flatLists+2*8+1)
	}
}
