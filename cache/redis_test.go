package cache

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	distcache "github.com/distribution/distribution/v3/registry/storage/cache"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	rediscache "github.com/distribution/distribution/v3/registry/storage/cache/redis"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

func redisConfig(addr string) *configuration.Configuration {
	return &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory": configuration.Parameters{},
			"cache":    configuration.Parameters{"blobdescriptor": "redis"},
		},
		Redis: configuration.Redis{Options: configuration.RedisOptions{
			Addrs: []string{addr}, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		}},
	}
}

// batchStore deletes batches object by object: a prune.BatchRemover over any driver.
type batchStore struct{ *storage.Store }

func (b batchStore) DeleteBatch(ctx context.Context, objs []prune.Object) []error {
	errs := make([]error, len(objs))
	for i, o := range objs {
		errs[i] = b.Delete(ctx, o)
	}
	return errs
}

// TestRedisInvalidationAgainstDistributionsCache fills a real Redis through distribution's own
// cache provider, prunes, and asks that provider again: what was deleted is unknown, what
// stays is still cached, and the count of a dry run matches what the delete run removes; for
// a remover that deletes one object at a time and for one that deletes batches.
func TestRedisInvalidationAgainstDistributionsCache(t *testing.T) {
	for _, batches := range []bool{false, true} {
		t.Run(fmt.Sprintf("batches=%v", batches), func(t *testing.T) { testRedisInvalidation(t, batches) })
	}
}

func testRedisInvalidation(t *testing.T, batches bool) {
	ctx := context.Background()
	srv := harness.StartRedisT(t)
	cfg := redisConfig(srv.Addr)
	inval, err := NewInvalidation(ctx, cfg, inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	defer inval.Close()
	provider := rediscache.NewRedisBlobDescriptorCacheProvider(inval.Redis.Client)

	layer, manifest := digest.FromString("layer"), digest.FromString("manifest")
	shared, doomed := digest.FromString("shared"), digest.FromString("doomed")
	set := func(repo string, dgsts ...digest.Digest) {
		t.Helper()
		svc, err := provider.RepositoryScoped(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dgsts {
			if err := svc.SetDescriptor(ctx, d, v1.Descriptor{Digest: d, Size: 1, MediaType: "application/octet-stream"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	set("ns/app", layer, manifest, shared)
	set("ns/other", shared)
	set("ns/doomed", doomed, shared)
	set("ns/doomed/nested", doomed)

	plan := prune.NewPlan(
		prune.Object{Kind: prune.KindRepository, Repository: "ns/doomed", Nested: true},
		prune.Object{Kind: prune.KindManifestLink, Repository: "ns/app", Digest: manifest},
		prune.Object{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: layer},
		prune.Object{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: shared},
		prune.Object{Kind: prune.KindBlob, Digest: layer},
		prune.Object{Kind: prune.KindBlob, Digest: manifest},
	)
	// links: 3 x (member + hash); ns/doomed: its set and 2 hashes; blobs: 2 global hashes.
	const want = 3*2 + 3 + 2
	n, err := inval.Count(ctx, plan, 4)
	if err != nil || n != want {
		t.Fatalf("Count = %d, %v; want %d", n, err, want)
	}

	var store prune.Remover = &storage.Store{Driver: inval.Driver, Workers: 4}
	if batches {
		store = batchStore{store.(*storage.Store)}
	}
	if _, err := prune.Sweep(ctx, plan, inval.Wrap(store), 4, nil); err != nil {
		t.Fatal(err)
	}
	if err := inval.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if got := inval.Invalidated(); got != want {
		t.Errorf("Invalidated = %d, want %d", got, want)
	}

	stat := cachedStat(ctx, provider)
	for _, gone := range []struct {
		repo string
		d    digest.Digest
	}{{"ns/app", layer}, {"ns/app", manifest}, {"ns/app", shared}, {"ns/doomed", doomed}, {"ns/doomed", shared}, {"", layer}, {"", manifest}} {
		if err := stat(gone.repo, gone.d); !errors.Is(err, distribution.ErrBlobUnknown) {
			t.Errorf("%q %s still cached (%v)", gone.repo, gone.d, err)
		}
	}
	for _, kept := range []struct {
		repo string
		d    digest.Digest
	}{{"ns/other", shared}, {"ns/doomed/nested", doomed}, {"", shared}, {"", doomed}} {
		if err := stat(kept.repo, kept.d); err != nil {
			t.Errorf("%q %s was invalidated: %v", kept.repo, kept.d, err)
		}
	}
	keys, err := inval.Redis.Client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	wantKeys := []string{
		"blobs::" + doomed.String(), "blobs::" + shared.String(),
		"repository::ns/doomed/nested::blobs", "repository::ns/doomed/nested::blobs::" + doomed.String(),
		"repository::ns/other::blobs", "repository::ns/other::blobs::" + shared.String(),
	}
	sort.Strings(wantKeys)
	if strings.Join(keys, "\n") != strings.Join(wantKeys, "\n") {
		t.Errorf("keys left:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(wantKeys, "\n"))
	}
	if n, err := inval.Count(ctx, plan, 4); err != nil || n != 0 {
		t.Errorf("Count after the run = %d, %v; want 0", n, err)
	}
	// The sweep wrote the marker, last with the end phase.
	content, err := inval.Driver.GetContent(ctx, storage.PruneMarkerPath())
	if err != nil || !strings.Contains(string(content), MarkerFinished) {
		t.Errorf("marker %q, %v", content, err)
	}
}

// TestRedisDownFailsTheDeletion: a deletion whose entries cannot be invalidated fails before
// it deletes, and the error names the keys; without Redis at the start, nothing runs at all.
func TestRedisDownFailsTheDeletion(t *testing.T) {
	ctx := context.Background()
	srv := harness.StartRedisT(t)
	inval, err := NewInvalidation(ctx, redisConfig(srv.Addr), inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	defer inval.Close()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	dgst := digest.FromString("blob")
	data := storage.BlobDirPath(dgst) + "/data"
	if err := inval.Driver.PutContent(ctx, data, []byte("blob")); err != nil {
		t.Fatal(err)
	}
	store := &storage.Store{Driver: inval.Driver}
	rm := inval.Wrap(store)
	err = rm.Delete(ctx, prune.Object{Kind: prune.KindBlob, Digest: dgst})
	if err == nil || !strings.Contains(err.Error(), "blobs::"+dgst.String()) ||
		!strings.Contains(err.Error(), "it is not deleted") {
		t.Fatalf("DeleteBlob with Redis down: %v", err)
	}
	// In a batch, the object whose entries stay is left out of the deletion, with its error;
	// the tag beside it has no entries and goes.
	tag := prune.Object{Kind: prune.KindTag, Repository: "ns/app", Name: "v1"}
	errs := inval.Wrap(batchStore{store}).(prune.BatchRemover).DeleteBatch(ctx,
		[]prune.Object{{Kind: prune.KindBlob, Digest: dgst}, tag})
	if len(errs) != 2 || errs[0] == nil || !strings.Contains(errs[0].Error(), "it is not deleted") || errs[1] != nil {
		t.Fatalf("DeleteBatch with Redis down: %v", errs)
	}
	// The entries go first: a blob whose entries could not be removed stays, so that no
	// entry can outlive its blob.
	if _, err := inval.Driver.Stat(ctx, data); err != nil {
		t.Errorf("the blob was deleted although its cache entries were not: %v", err)
	}

	if _, err := NewInvalidation(ctx, redisConfig(srv.Addr), inmemory.New()); err == nil ||
		!strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("NewInvalidation with Redis down: %v", err)
	}
}

func TestNoRedisNoCount(t *testing.T) {
	inval, err := NewInvalidation(
		context.Background(),
		&configuration.Configuration{Storage: configuration.Storage{"inmemory": nil}},
		inmemory.New(),
	)
	if err != nil || inval.Redis != nil {
		t.Fatalf("%v %v", inval, err)
	}
	var b strings.Builder
	inval.WriteSummary(&b, 3, true)
	if b.Len() != 0 {
		t.Errorf("a summary line without Redis: %q", b.String())
	}
}

// cachedStat asks distribution's cache provider for d, registry-wide when repo is empty:
// distribution.ErrBlobUnknown says the entry is gone.
func cachedStat(ctx context.Context, provider distcache.BlobDescriptorCacheProvider) func(string, digest.Digest) error {
	return func(repo string, d digest.Digest) error {
		if repo == "" {
			_, err := provider.Stat(ctx, d)
			return err
		}
		svc, _ := provider.RepositoryScoped(repo)
		_, err := svc.Stat(ctx, d)
		return err
	}
}
