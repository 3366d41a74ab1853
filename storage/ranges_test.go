package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// writeRangeStore writes a store whose keys give the ranges something to get wrong: blobs over
// many prefixes, namespaces that are prefixes of others and names with characters that sort
// before '/', nested repositories, tags, uploads, files the registry does not write, an
// unaddressable name, and the prune's own files.
func writeRangeStore(t testing.TB, d driver.StorageDriver) {
	t.Helper()
	ctx := context.Background()
	put := func(p, content string) {
		if err := d.PutContent(ctx, p, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	var digests []digest.Digest
	for i := range 300 {
		dgst := digest.FromString(fmt.Sprint("blob ", i))
		digests = append(digests, dgst)
		put(BlobDataPath(dgst), "blob")
	}
	put(BlobsPath+"/sha256/stray", "not a blob")
	put(PruneLockPath(), "{}")
	var repos []string
	for _, ns := range []string{"a", "ns1", "ns1-x", "ns1.y", "ns10", "ns2", "openshift", "z9"} {
		for _, name := range []string{"app", "app-x", "app/nested", "db"} {
			repos = append(repos, ns+"/"+name)
		}
	}
	for i := range 40 {
		repos = append(repos, fmt.Sprintf("n%02d/app", i), fmt.Sprintf("n%02d/app/nested", i))
	}
	repos = append(repos, "single", "ns2/BadName")
	for i, repo := range repos {
		for j := range 3 {
			dgst := digests[(i*7+j)%len(digests)]
			put(ManifestRevisionLinkPath(repo, dgst), dgst.String())
			put(LayerLinkPath(repo, digests[(i*11+j)%len(digests)]), dgst.String())
			put(TagIndexEntryLinkPath(repo, "latest", dgst), dgst.String())
		}
		put(TagCurrentLinkPath(repo, "latest"), digests[i%len(digests)].String())
		if i%5 == 0 {
			put(UploadPath(repo, "u1")+"/data", "partial")
			put(UploadPath(repo, "u1")+"/startedat", "2026-01-01T00:00:00Z")
		}
		if i%9 == 0 {
			put(RepositoryPath(repo)+"/_manifests/stray", "odd")
		}
	}
	put(RepositoriesPath+"/ns2/stray", "outside any data directory")
}

// The key ranges listed at once make the same inventory as the one flat listing, with no
// repository listed twice, at a few pages more than the flat listing.
func TestRangedInventoryIsTheFlatOne(t *testing.T) {
	ctx := context.Background()
	fs := filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 100})
	writeRangeStore(t, fs)

	const pageKeys = 5
	flatDriver := &ObjectStoreListing{StorageDriver: fs, PageKeys: pageKeys}
	flat := &Store{Driver: flatDriver, Workers: 1, Log: quietLog()}
	want, err := flat.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Blobs) != 300 || len(want.Repositories) < 100 {
		t.Fatalf("flat inventory: %d blobs, %d repositories", len(want.Blobs), len(want.Repositories))
	}
	for _, workers := range []int{2, 4, 8} {
		t.Run(fmt.Sprint(workers, " workers"), func(t *testing.T) {
			rangedDriver := &ObjectStoreListing{StorageDriver: fs, PageKeys: pageKeys}
			ranged := &Store{Driver: rangedDriver, Workers: workers, Log: quietLog(), rangePageKeys: pageKeys}
			got, err := ranged.Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ranged inventory differs from the flat one:\n got %+v\nwant %+v", got, want)
			}
			if g, w := ranged.walked.Load(), flat.walked.Load(); !reflect.DeepEqual(g, w) {
				t.Errorf("ranged walked repositories %+v, flat %+v", g, w)
			}
			var blobRanges, repoRanges int
			for _, h := range rangedDriver.Hints() {
				switch {
				case strings.HasPrefix(h, BlobsPath+"/"):
					blobRanges++
				case strings.HasPrefix(h, RepositoriesPath+"/"):
					repoRanges++
				}
			}
			if blobRanges == 0 || repoRanges == 0 {
				t.Errorf("%d blob ranges and %d repository ranges split off: want both split", blobRanges, repoRanges)
			}
			t.Logf("%d blob ranges and %d repository ranges split off; %d requests, flat %d",
				blobRanges, repoRanges, rangedDriver.Requests(), flatDriver.Requests())
			// Each range wastes at most a page, and there are at most 2 × maxRanges, besides
			// the namespaces' listing.
			namespaces, err := fs.List(ctx, RepositoriesPath)
			if err != nil {
				t.Fatal(err)
			}
			maxRanges := min(maxRangesPerRegion, 2*workers)
			bound := flatDriver.Requests() + 2*maxRanges + (len(namespaces)+pageKeys-1)/pageKeys
			if r := rangedDriver.Requests(); r <= flatDriver.Requests()+2 || r > bound {
				t.Errorf("ranged listing made %d requests, flat %d: want more (it split) and at most %d",
					r, flatDriver.Requests(), bound)
			}
		})
	}
}

// One range's failing listing fails the inventory: without that range, what it holds would
// look gone.
func TestRangedInventoryFailsWithAnyRange(t *testing.T) {
	ctx := context.Background()
	fs := filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 100})
	writeRangeStore(t, fs)
	for _, after := range []string{RepositoriesPath, RepositoriesPath + "/", BlobsPath + "/"} {
		d := &ObjectStoreListing{StorageDriver: fs, PageKeys: 5, FailAfter: after}
		store := &Store{Driver: d, Workers: 4, Log: quietLog(), rangePageKeys: 5}
		if inv, err := store.Inventory(ctx); !errors.Is(err, ErrListingFailed) {
			t.Errorf("a failing range after %s: inventory %v, error %v; want %v", after, inv != nil, err, ErrListingFailed)
		}
	}
}

// A small store stays one listing: a page of each region says splitting would cost more pages
// than it saves.
func TestRangedInventorySmallStoreDoesNotSplit(t *testing.T) {
	ctx := context.Background()
	fs := filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 100})
	writeRangeStore(t, fs)
	flatDriver := &ObjectStoreListing{StorageDriver: fs}
	if _, err := (&Store{Driver: flatDriver, Workers: 1, Log: quietLog()}).Inventory(ctx); err != nil {
		t.Fatal(err)
	}
	rangedDriver := &ObjectStoreListing{StorageDriver: fs}
	if _, err := (&Store{Driver: rangedDriver, Workers: 8, Log: quietLog()}).Inventory(ctx); err != nil {
		t.Fatal(err)
	}
	// Only the namespaces are listed besides: the page of repositories' keys needs them to
	// tell how many are left.
	if r, f := rangedDriver.Requests(), flatDriver.Requests(); r != f+1 {
		t.Errorf("ranged listing of a small store made %d requests, the flat one %d", r, f)
	}
}

func TestSplitPoints(t *testing.T) {
	bounds := []string{"b", "c", "d", "e", "f", "g", "h", "i"}
	for _, tt := range []struct {
		cur, upTo  string
		seen       int
		want       []string
		minKeys, n int
	}{
		// 10 keys took the range past b: 70 are expected after it, in 7 ranges of 10.
		{cur: "b1", seen: 10, minKeys: 10, n: 16, want: []string{"d", "e", "f", "g", "h", "i"}},
		// Capped at 3 ranges: the rest goes to 2 more.
		{cur: "b1", seen: 10, minKeys: 10, n: 3, want: []string{"e", "g"}},
		// Ranges stop short of upTo.
		{cur: "b1", upTo: "e", seen: 10, minKeys: 10, n: 16, want: []string{"d"}},
		// Too few keys expected.
		{cur: "b1", seen: 10, minKeys: 50, n: 16},
		// Before every bound: nothing to estimate with.
		{cur: "a", seen: 10, minKeys: 1, n: 16},
		// Past every bound.
		{cur: "i1", seen: 10, minKeys: 1, n: 16},
	} {
		got := splitPoints(bounds, tt.cur, tt.upTo, tt.seen, tt.minKeys, tt.n)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitPoints(%q, %q, seen %d, min %d, max %d) = %q, want %q",
				tt.cur, tt.upTo, tt.seen, tt.minKeys, tt.n, got, tt.want)
		}
	}
}
