package cache

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/hardprune/image-registry/prune"
)

// Invalidation is the cache side of one -prune=delete (or, for the count, -prune=check) run:
// it writes the prune marker around the sweep and, when the registry caches blob descriptors
// in Redis, removes the entries of everything the sweep deletes.
type Invalidation struct {
	// Driver is the storage the marker goes to, the one the prune sweeps.
	Driver driver.StorageDriver
	// Redis is nil unless storage.cache.blobdescriptor is redis.
	Redis *RedisInvalidator
	// Now stamps the marker; time.Now when nil.
	Now func() time.Time

	startOnce   sync.Once
	startErr    error
	started     atomic.Bool
	invalidated atomic.Int64
}

// NewInvalidation prepares the cache side of a prune over drv with the registry configuration
// cfg. With a Redis cache it connects and pings the server first, so that a prune that could
// not invalidate stops before it deletes anything. Close releases the connection.
func NewInvalidation(ctx context.Context, cfg *configuration.Configuration, drv driver.StorageDriver) (*Invalidation, error) {
	inv := &Invalidation{Driver: drv}
	if BlobDescriptorCache(cfg) != "redis" {
		return inv, nil
	}
	client, err := NewRedisClient(cfg.Redis)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("reaching the Redis blob descriptor cache at %s (the prune must remove the entries of what it deletes): %w",
			strings.Join(cfg.Redis.Options.Addrs, ","), err)
	}
	inv.Redis = &RedisInvalidator{Client: client}
	return inv, nil
}

// Close releases the Redis connection, if any.
func (inv *Invalidation) Close() error {
	if inv.Redis == nil {
		return nil
	}
	return inv.Redis.Client.Close()
}

// Invalidated is how many cache entries the wrapped remover has removed so far.
func (inv *Invalidation) Invalidated() int { return int(inv.invalidated.Load()) }

// Wrap returns a remover that writes the start marker before its first deletion and removes
// the cache entries of each object right before and right after r deletes it.
func (inv *Invalidation) Wrap(r prune.Remover) prune.Remover {
	return &invalidating{Remover: r, inv: inv}
}

// Finish writes the end marker if the start marker was written, even when the sweep failed or
// was interrupted: whatever it deleted must leave the registries' caches. It does not follow
// ctx's cancellation, so that an interrupted run still writes it.
func (inv *Invalidation) Finish(ctx context.Context) error {
	if !inv.started.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := WriteMarker(ctx, inv.Driver, MarkerFinished, inv.now()); err != nil {
		return fmt.Errorf("%w; registries with an in-memory blob descriptor cache may keep descriptors of deleted blobs until restarted", err)
	}
	return nil
}

// Count is how many Redis entries a delete run of plan would remove; 0 without Redis. Up to
// workers requests are under way at once.
func (inv *Invalidation) Count(ctx context.Context, plan *prune.Plan, workers int) (int, error) {
	if inv.Redis == nil || plan == nil {
		return 0, nil
	}
	var total atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	add := func(f func() (int, error)) {
		g.Go(func() error {
			n, err := f()
			total.Add(int64(n))
			return err
		})
	}
	r := inv.Redis
	for _, a := range plan.Repositories {
		add(func() (int, error) { return r.CountRepository(ctx, a.Name) })
	}
	for _, links := range [][]prune.LinkAction{plan.ManifestLinks, plan.LayerLinks} {
		for _, a := range links {
			add(func() (int, error) { return r.CountLink(ctx, a.Repository, a.Digest) })
		}
	}
	for _, a := range plan.Blobs {
		add(func() (int, error) { return r.CountBlob(ctx, a.Digest) })
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("counting the Redis cache entries to invalidate: %w", err)
	}
	return int(total.Load()), nil
}

// WriteSummary prints the cache line after prune.WriteSummary's, when Redis is configured.
func (inv *Invalidation) WriteSummary(w io.Writer, n int, dryRun bool) {
	if inv.Redis == nil {
		return
	}
	if dryRun {
		fmt.Fprintf(w, "Would invalidate %d cache entries\n", n)
		return
	}
	fmt.Fprintf(w, "Invalidated %d cache entries\n", n)
}

func (inv *Invalidation) now() time.Time {
	if inv.Now == nil {
		return time.Now()
	}
	return inv.Now()
}

// start writes the start marker once, before the first deletion; if it cannot, no deletion
// happens.
func (inv *Invalidation) start(ctx context.Context) error {
	inv.startOnce.Do(func() {
		inv.startErr = WriteMarker(ctx, inv.Driver, MarkerStarted, inv.now())
		if inv.startErr == nil {
			inv.started.Store(true)
		}
	})
	return inv.startErr
}

// redisBackoff retries a failed invalidation a few times, like a failed storage deletion.
var redisBackoff = wait.Backoff{Steps: 4, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1}

// invalidate removes the Redis entries of one object; keys names them for the error, which
// tells the administrator what is left to remove by hand. It does not follow ctx's
// cancellation (a stopped run still finishes the deletion under way, so its entries must go
// too), only a timeout.
func (inv *Invalidation) invalidate(ctx context.Context, what, keys string, deleted bool, f func(context.Context) (int, error)) error {
	if inv.Redis == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := retry.OnError(redisBackoff, func(error) bool { return ctx.Err() == nil }, func() error {
		n, err := f(ctx)
		if err == nil {
			inv.invalidated.Add(int64(n))
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case deleted:
		return fmt.Errorf("%s is deleted from storage, but its Redis cache entries are not (remove %s by hand, or flush the cache, before pushes resume): %w", what, keys, err)
	default:
		return fmt.Errorf("removing the Redis cache entries of %s (%s) before deleting it; it is not deleted: %w", what, keys, err)
	}
}

// around deletes an object between two invalidations of its entries. The one before covers a
// run killed right after the deletion: the next run no longer sees the object, so nothing
// would ever remove its entries. The one after covers a read that cached the object again in
// between. An entry removed while its object still exists costs a cache miss, nothing more.
func (inv *Invalidation) around(ctx context.Context, what, keys string, f func(context.Context) (int, error), del func() error) error {
	if err := inv.invalidate(ctx, what, keys, false, f); err != nil {
		return err
	}
	if err := del(); err != nil {
		return err
	}
	return inv.invalidate(ctx, what, keys, true, f)
}

// invalidating is the remover Wrap returns.
type invalidating struct {
	prune.Remover
	inv *Invalidation
}

func (i *invalidating) DeleteRepository(ctx context.Context, a prune.RepositoryAction) error {
	if err := i.inv.start(ctx); err != nil {
		return err
	}
	return i.inv.around(ctx, "the repository", repositorySetKey(a.Name)+" and "+repositorySetKey(a.Name)+"::*",
		func(ctx context.Context) (int, error) { return i.inv.Redis.Repository(ctx, a.Name) },
		func() error { return i.Remover.DeleteRepository(ctx, a) })
}

func (i *invalidating) DeleteTag(ctx context.Context, a prune.TagAction) error {
	if err := i.inv.start(ctx); err != nil {
		return err
	}
	return i.Remover.DeleteTag(ctx, a)
}

func (i *invalidating) DeleteTagIndexEntry(ctx context.Context, a prune.TagIndexAction) error {
	if err := i.inv.start(ctx); err != nil {
		return err
	}
	return i.Remover.DeleteTagIndexEntry(ctx, a)
}

func (i *invalidating) DeleteManifestLink(ctx context.Context, a prune.LinkAction) error {
	if err := i.inv.start(ctx); err != nil {
		return err
	}
	return i.aroundLink(ctx, "the manifest link", a.Repository, a.Digest, func() error { return i.Remover.DeleteManifestLink(ctx, a) })
}

func (i *invalidating) DeleteLayerLink(ctx context.Context, a prune.LinkAction) error {
	if err := i.inv.start(ctx); err != nil {
		return err
	}
	return i.aroundLink(ctx, "the layer link", a.Repository, a.Digest, func() error { return i.Remover.DeleteLayerLink(ctx, a) })
}

func (i *invalidating) aroundLink(ctx context.Context, what, repo string, dgst digest.Digest, del func() error) error {
	keys := fmt.Sprintf("member %s of %s, and %s", dgst, repositorySetKey(repo), repositoryBlobKey(repo, dgst))
	return i.inv.around(ctx, what, keys, func(ctx context.Context) (int, error) { return i.inv.Redis.Link(ctx, repo, dgst) }, del)
}

func (i *invalidating) DeleteUpload(ctx context.Context, a prune.UploadAction) error {
	if err := i.inv.start(ctx); err != nil {
		return err
	}
	return i.Remover.DeleteUpload(ctx, a)
}

func (i *invalidating) DeleteBlob(ctx context.Context, a prune.BlobAction) error {
	if err := i.inv.start(ctx); err != nil {
		return err
	}
	return i.inv.around(ctx, "the blob", blobKey(a.Digest),
		func(ctx context.Context) (int, error) { return i.inv.Redis.Blob(ctx, a.Digest) },
		func() error { return i.Remover.DeleteBlob(ctx, a) })
}
