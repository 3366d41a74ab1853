package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/hardprune/image-registry/prune"
)

// flakyKeys is a keyDeleter that fails its first request whole, refuses some keys for a
// number of tries, and records the size of each request.
type flakyKeys struct {
	requests []int
	refuse   map[string]int // path -> tries left to refuse it (-1: always)
}

func (f *flakyKeys) deleteKeys(_ context.Context, paths []string) (map[string]error, error) {
	f.requests = append(f.requests, len(paths))
	if len(f.requests) == 1 {
		return nil, errors.New("503 SlowDown")
	}
	refused := map[string]error{}
	for _, p := range paths {
		if n := f.refuse[p]; n != 0 {
			f.refuse[p] = n - 1
			refused[p] = fmt.Errorf("key %s: AccessDenied", p)
		}
	}
	return refused, nil
}

// TestDeleteBatchRetriesAndReports: a batch's exact keys go in requests of at most
// prune.BatchSize; a failed request is tried again, a refused key again on its own, and a key
// refused to the end fails its object alone. Objects that are prefixes go one by one.
func TestDeleteBatchRetriesAndReports(t *testing.T) {
	defer func(b wait.Backoff) { deleteBackoff = b }(deleteBackoff)
	deleteBackoff = wait.Backoff{Steps: 4, Duration: time.Millisecond}

	d := inmemory.New()
	ctx := context.Background()
	repo := &prune.Object{Kind: prune.KindRepository, Repository: "ns/gone"}
	if err := d.PutContent(ctx, RepositoryPath("ns/gone")+"/_layers/x/link", []byte("x")); err != nil {
		t.Fatal(err)
	}
	objs := []prune.Object{*repo}
	for i := range prune.BatchSize + 10 {
		objs = append(objs, prune.Object{Kind: prune.KindBlob, Digest: digest.FromString(fmt.Sprint(i))})
	}
	twice, always := BlobDataPath(objs[1].Digest), BlobDataPath(objs[2].Digest)
	keys := &flakyKeys{refuse: map[string]int{twice: 2, always: -1}}
	b := &batchingStore{Store: &Store{Driver: d, Workers: 2}, keys: keys}

	errs := b.DeleteBatch(ctx, objs)
	for i, err := range errs {
		switch {
		case i == 2:
			if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
				t.Errorf("the key refused every time: %v", err)
			}
		case err != nil:
			t.Errorf("%s: %v", objs[i], err)
		}
	}
	// The backoff's 4 tries of the first 1000 keys: failed whole, then 2 refused, both refused
	// again, and the one refused twice goes on the last try; then the remaining 10 keys.
	if want := []int{1000, 1000, 2, 2, 10}; fmt.Sprint(keys.requests) != fmt.Sprint(want) {
		t.Errorf("requests of %v keys, want %v", keys.requests, want)
	}
	if _, err := d.Stat(ctx, RepositoryPath("ns/gone")); err == nil {
		t.Error("the repository, a prefix, was not deleted")
	}
}

// recordingKeys is a keyDeleter that records each request's paths and refuses some paths.
type recordingKeys struct {
	requests [][]string
	refuse   map[string]bool
}

func (r *recordingKeys) deleteKeys(_ context.Context, paths []string) (map[string]error, error) {
	r.requests = append(r.requests, append([]string(nil), paths...))
	refused := map[string]error{}
	for _, p := range paths {
		if r.refuse[p] {
			refused[p] = errors.New("AccessDenied")
		}
	}
	return refused, nil
}

// TestDeleteBatchTagOrder: a tag's current link goes in a request before its index entries,
// and a tag whose current link stays keeps its index.
func TestDeleteBatchTagOrder(t *testing.T) {
	defer func(b wait.Backoff) { deleteBackoff = b }(deleteBackoff)
	deleteBackoff = wait.Backoff{Steps: 1}
	d := digest.FromString("m")
	repo := prune.Repository{Name: "ns/app", Tags: []prune.Tag{
		{Name: "a", Index: []digest.Digest{d}}, {Name: "b", Index: []digest.Digest{d}},
	}}
	keys := &recordingKeys{refuse: map[string]bool{TagCurrentLinkPath("ns/app", "b"): true}}
	b := &batchingStore{Store: &Store{Driver: inmemory.New()}, keys: keys}
	b.walked.Store(&walkedRepositories{repos: []prune.Repository{repo}})

	errs := b.DeleteBatch(context.Background(), []prune.Object{
		{Kind: prune.KindTag, Repository: "ns/app", Name: "a"},
		{Kind: prune.KindTag, Repository: "ns/app", Name: "b"},
	})
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("errors %v: want tag b's refused current link only", errs)
	}
	want := fmt.Sprint([][]string{
		{TagCurrentLinkPath("ns/app", "a"), TagCurrentLinkPath("ns/app", "b")},
		{TagIndexEntryLinkPath("ns/app", "a", d)},
	})
	if got := fmt.Sprint(keys.requests); got != want {
		t.Errorf("requests %s, want %s", got, want)
	}
}
