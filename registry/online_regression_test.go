package registry

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	diststorage "github.com/distribution/distribution/v3/registry/storage"
	distcache "github.com/distribution/distribution/v3/registry/storage/cache"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/openshift/client-go/image/clientset/versioned/fake"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/cache"
	"github.com/hardprune/image-registry/online"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

var regressionTiming = online.Timing{
	Poll: 20 * time.Millisecond, Renew: 100 * time.Millisecond, AdvertTTL: time.Second,
	Fence: 400 * time.Millisecond, AckTimeout: 2 * time.Second, Drain: 300 * time.Millisecond,
	ClaimWait: 2 * time.Second, Flush: 20 * time.Millisecond, Settle: 50 * time.Millisecond,
}

// Regression tests of an adversarial review of the online prune protocol: each comment says
// what used to go wrong.

// TestIndexPutCoversItsStoredChildrensBlobs: an index pushed during an online run that
// reuses a child manifest already in the repository (an orphan: its Image was pruned; clients
// skip pushing a child that exists) records uses of the index and its children only.
// Distribution checks that the children exist, not what they use. So the run, which planned
// the orphan child and its layers, keeps the child (in use) and deletes its layers: the push
// succeeds and the Image it records does not pull.
func TestIndexPutCoversItsStoredChildrensBlobs(t *testing.T) {
	ctx := context.Background()
	quiet := logrus.New()
	quiet.SetLevel(logrus.ErrorLevel)
	d := inmemory.New()
	ns, err := diststorage.NewRegistry(ctx, d, diststorage.EnableValidateImageIndexImagesExist)
	if err != nil {
		t.Fatal(err)
	}
	named, _ := reference.WithName("ns/app")
	base, err := ns.Repository(ctx, named)
	if err != nil {
		t.Fatal(err)
	}
	// An earlier push: the child, its config and layer. Its Image was pruned since: all orphans.
	blobs := base.Blobs(ctx)
	config, err := blobs.Put(ctx, v1.MediaTypeImageConfig, []byte(`{"architecture":"arm64","os":"linux"}`))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := blobs.Put(ctx, v1.MediaTypeImageLayerGzip, []byte("layer bytes"))
	if err != nil {
		t.Fatal(err)
	}
	config.MediaType, layer.MediaType = v1.MediaTypeImageConfig, v1.MediaTypeImageLayerGzip
	child, err := ocischema.FromStruct(ocischema.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: config, Layers: []v1.Descriptor{layer},
	})
	if err != nil {
		t.Fatal(err)
	}
	baseManifests, err := base.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	childDigest, err := baseManifests.Put(ctx, child)
	if err != nil {
		t.Fatal(err)
	}
	_, childPayload, _ := child.Payload()

	// A serving replica, and a run it has entered.
	replica := &online.Replica{Driver: d, Timing: regressionTiming, Log: quiet}
	if err := replica.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); replica.Run(rctx) }()
	defer func() { stop(); <-done }()
	onlineReplica = replica
	defer func() { onlineReplica = nil }()
	lock, err := storage.AcquireLock(ctx, d, storage.LockOptions{Settle: time.Millisecond, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Release() }()
	if err := lock.MarkOnline(ctx); err != nil {
		t.Fatal(err)
	}
	coord := &online.Coordinator{Driver: d, Run: lock.Record().Owner, Timing: regressionTiming, Log: quiet}
	if err := coord.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// The push: an index naming the existing child, by tag, through the middleware.
	recorder = &Recorder{Client: fake.NewSimpleClientset().ImageV1()}
	defer func() { recorder = nil }()
	repo, err := newImageStreamRepository(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	index, err := ocischema.FromDescriptors([]v1.Descriptor{{
		MediaType: v1.MediaTypeImageManifest, Digest: childDigest, Size: int64(len(childPayload)),
		Platform: &v1.Platform{Architecture: "arm64", OS: "linux"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms.Put(ctx, index, distribution.WithTag("v1")); err != nil {
		t.Fatalf("the push failed (which would be fine): %v", err)
	}

	// The run's later batches (links, then blobs), claimed after the put's record.
	objs := []prune.Object{
		{Kind: prune.KindManifestLink, Repository: "ns/app", Digest: childDigest},
		{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: layer.Digest},
		{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: config.Digest},
		{Kind: prune.KindBlob, Digest: childDigest},
		{Kind: prune.KindBlob, Digest: layer.Digest},
		{Kind: prune.KindBlob, Digest: config.Digest},
	}
	inUse, release, err := coord.Claim(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	store := &storage.Store{Driver: d, Log: quiet}
	for i, o := range objs {
		if !inUse[i] {
			if err := store.Delete(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	release()

	// Everything the pushed index uses through its stored child stays.
	for i, o := range objs {
		if !inUse[i] {
			t.Errorf("%s was deleted though the index pushed during the run uses it through its child", o)
		}
	}
	if _, err := base.Blobs(ctx).Stat(ctx, layer.Digest); err != nil {
		t.Errorf("the child's layer: %v", err)
	}
}

// TestUseOfNestedRepositoryKeepsItsParent: a repository that goes whole, with no nested
// repository at the inventory, is removed with everything below its directory; a push into a
// repository nested below it during the run records uses of that repository only, which do
// not cover the parent, so the push's upload and links go with the parent.
func TestUseOfNestedRepositoryKeepsItsParent(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	link := storage.LayerLinkPath("ns/app/sub", blob("l", 1, "").Digest)
	if err := d.PutContent(ctx, link, []byte(blob("l", 1, "").Digest)); err != nil {
		t.Fatal(err)
	}
	parent := prune.Object{Kind: prune.KindRepository, Repository: "ns/app"} // Nested: false at the inventory
	use := online.Use{Repository: "ns/app/sub", Digest: blob("l", 1, "").Digest}
	var set online.UseSet
	set.Add(use)
	if set.Covers(parent) {
		return
	}
	if err := (&storage.Store{Driver: d}).Delete(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, link); err == nil {
		return
	}
	t.Errorf("correctness: a use of ns/app/sub does not cover the removal of ns/app, which deletes ns/app/sub's link")
}

// blockingStatter answers "exists" from storage, then waits before returning: a Stat that read
// storage during a run and returns after it.
type blockingStatter struct {
	distribution.BlobDescriptorService
	read, release chan struct{}
}

func (b *blockingStatter) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	close(b.read)
	<-b.release
	return v1.Descriptor{Digest: dgst, Size: 3, MediaType: "application/octet-stream"}, nil
}

// TestCacheKeepsNothingReadDuringARun: the in-memory cache is bypassed during a run and
// dropped at its end; a Stat that read storage during the run (before the run deleted the
// blob) and stores its answer after the end (bypass off, cache already dropped) leaves a
// descriptor of a deleted blob in the cache: HEAD 200, the client skips the upload, and the
// manifest put's check answers from the cache.
func TestCacheKeepsNothingReadDuringARun(t *testing.T) {
	ctx := context.Background()
	var running atomic.Bool
	running.Store(true)
	mem := cache.NewResettableMemory(0)
	provider := &cache.Bypassable{BlobDescriptorCacheProvider: mem, Bypass: running.Load}
	backend := &blockingStatter{read: make(chan struct{}), release: make(chan struct{})}
	statter := distcache.NewCachedBlobStatter(provider, backend)
	gone := dg("deleted by the run")
	done := make(chan struct{})
	go func() { defer close(done); _, _ = statter.Stat(ctx, gone) }()
	<-backend.read
	// ... the run deletes the blob, ends; the replica leaves it and drops the cache.
	running.Store(false)
	mem.Reset()
	close(backend.release)
	<-done
	if _, err := mem.Stat(ctx, gone); err == nil {
		t.Error("correctness: after the run, the cache describes a blob the run deleted")
	}
}
