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
func NewInvalidation(
	ctx context.Context,
	cfg *configuration.Configuration,
	drv driver.StorageDriver,
) (*Invalidation, error) {
	inval := &Invalidation{Driver: drv}
	if BlobDescriptorCache(cfg) != "redis" {
		return inval, nil
	}
	client, err := NewRedisClient(cfg.Redis)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf(
			"reaching the Redis blob descriptor cache at %s (the prune must remove the entries of what it deletes): %w",
			strings.Join(cfg.Redis.Options.Addrs, ","),
			err,
		)
	}
	inval.Redis = &RedisInvalidator{Client: client}
	return inval, nil
}

// Close releases the Redis connection, if any.
func (inval *Invalidation) Close() error {
	if inval.Redis == nil {
		return nil
	}
	return inval.Redis.Client.Close()
}

// Invalidated is how many cache entries the wrapped remover has removed so far.
func (inval *Invalidation) Invalidated() int { return int(inval.invalidated.Load()) }

// Wrap returns a remover that writes the start marker before its first deletion and removes
// the cache entries of each object right before and right after r deletes it.
func (inval *Invalidation) Wrap(r prune.Remover) prune.Remover {
	i := invalidating{Remover: r, inval: inval}
	if b, ok := r.(prune.BatchRemover); ok {
		return &invalidatingBatch{invalidating: i, batches: b}
	}
	return &i
}

// Finish writes the end marker if the start marker was written, even when the sweep failed or
// was interrupted: whatever it deleted must leave the registries' caches. It does not follow
// ctx's cancellation, so that an interrupted run still writes it.
func (inval *Invalidation) Finish(ctx context.Context) error {
	if !inval.started.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := WriteMarker(ctx, inval.Driver, MarkerFinished, inval.now()); err != nil {
		return fmt.Errorf(
			"%w; registries with an in-memory blob descriptor cache may keep descriptors of deleted blobs until restarted",
			err,
		)
	}
	return nil
}

// Count is how many Redis entries a delete run of plan would remove; 0 without Redis. Up to
// workers requests are under way at once.
func (inval *Invalidation) Count(ctx context.Context, plan *prune.Plan, workers int) (int, error) {
	if inval.Redis == nil || plan == nil {
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
	r := inval.Redis
	for _, o := range plan.Of(prune.KindRepository) {
		add(func() (int, error) { return r.CountRepository(ctx, o.Repository) })
	}
	for _, k := range []prune.Kind{prune.KindManifestLink, prune.KindLayerLink} {
		for _, o := range plan.Of(k) {
			add(func() (int, error) { return r.CountLink(ctx, o.Repository, o.Digest) })
		}
	}
	for _, o := range plan.Of(prune.KindBlob) {
		add(func() (int, error) { return r.CountBlob(ctx, o.Digest) })
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("counting the Redis cache entries to invalidate: %w", err)
	}
	return int(total.Load()), nil
}

// WriteSummary prints the cache line after prune.WriteSummary's, when Redis is configured.
func (inval *Invalidation) WriteSummary(w io.Writer, n int, dryRun bool) {
	if inval.Redis == nil {
		return
	}
	if dryRun {
		fmt.Fprintf(w, "Would invalidate %d cache entries\n", n)
		return
	}
	fmt.Fprintf(w, "Invalidated %d cache entries\n", n)
}

func (inval *Invalidation) now() time.Time {
	if inval.Now == nil {
		return time.Now()
	}
	return inval.Now()
}

// start writes the start marker once, before the first deletion; if it cannot, no deletion
// happens.
func (inval *Invalidation) start(ctx context.Context) error {
	inval.startOnce.Do(func() {
		inval.startErr = WriteMarker(ctx, inval.Driver, MarkerStarted, inval.now())
		if inval.startErr == nil {
			inval.started.Store(true)
		}
	})
	return inval.startErr
}

// redisBackoff retries a failed invalidation a few times, like a failed storage deletion.
var redisBackoff = wait.Backoff{Steps: 4, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1}

// invalidate removes the Redis entries of one object; keys names them for the error, which
// tells the administrator what is left to remove by hand. It does not follow ctx's
// cancellation (a stopped run still finishes the deletion under way, so its entries must go
// too), only a timeout.
func (inval *Invalidation) invalidate(
	ctx context.Context,
	what, keys string,
	deleted bool,
	f func(context.Context) (int, error),
) error {
	if inval.Redis == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := retry.OnError(redisBackoff, func(error) bool { return ctx.Err() == nil }, func() error {
		n, err := f(ctx)
		if err == nil {
			inval.invalidated.Add(int64(n))
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case deleted:
		return fmt.Errorf(
			"%s is deleted from storage, but its Redis cache entries are not (remove %s by hand, or flush the cache, before pushes resume): %w",
			what,
			keys,
			err,
		)
	default:
		return fmt.Errorf(
			"removing the Redis cache entries of %s (%s) before deleting it; it is not deleted: %w",
			what,
			keys,
			err,
		)
	}
}

// around deletes an object between two invalidations of its entries. The one before covers a
// run killed right after the deletion: the next run no longer sees the object, so nothing
// would ever remove its entries. The one after covers a read that cached the object again in
// between. An entry removed while its object still exists costs a cache miss, nothing more.
func (inval *Invalidation) around(ctx context.Context, e entries, del func() error) error {
	if err := inval.invalidate(ctx, e.what, e.keys, false, e.remove); err != nil {
		return err
	}
	if err := del(); err != nil {
		return err
	}
	return inval.invalidate(ctx, e.what, e.keys, true, e.remove)
}

// entries are the Redis cache entries of one stored object.
type entries struct {
	what, keys string // for errors: what the object is, which keys hold it
	remove     func(context.Context) (int, error)
}

// entriesOf names o's cache entries; tags, index entries and uploads have none.
func (inval *Invalidation) entriesOf(o prune.Object) (entries, bool) {
	r := inval.Redis
	switch o.Kind {
	case prune.KindRepository:
		return entries{
			what:   "the repository",
			keys:   repositorySetKey(o.Repository) + " and " + repositorySetKey(o.Repository) + "::*",
			remove: func(ctx context.Context) (int, error) { return r.Repository(ctx, o.Repository) },
		}, true
	case prune.KindManifestLink, prune.KindLayerLink:
		return entries{
			what: "the " + o.Kind.String(),
			keys: fmt.Sprintf("member %s of %s, and %s",
				o.Digest, repositorySetKey(o.Repository), repositoryBlobKey(o.Repository, o.Digest)),
			remove: func(ctx context.Context) (int, error) { return r.Link(ctx, o.Repository, o.Digest) },
		}, true
	case prune.KindBlob:
		return entries{
			what:   "the blob",
			keys:   blobKey(o.Digest),
			remove: func(ctx context.Context) (int, error) { return r.Blob(ctx, o.Digest) },
		}, true
	}
	return entries{}, false
}

// invalidating is the remover Wrap returns.
type invalidating struct {
	prune.Remover
	inval *Invalidation
}

func (i *invalidating) Delete(ctx context.Context, o prune.Object) error {
	if err := i.inval.start(ctx); err != nil {
		return err
	}
	del := func() error { return i.Remover.Delete(ctx, o) }
	if e, ok := i.inval.entriesOf(o); ok {
		return i.inval.around(ctx, e, del)
	}
	return del()
}

// invalidatingBatch is invalidating over a prune.BatchRemover: the entries of each object of a
// batch go before the batch is deleted and again after, as around does for one object. An
// object whose entries cannot be removed before is left out of the batch, with its error.
type invalidatingBatch struct {
	invalidating
	batches prune.BatchRemover
}

func (i *invalidatingBatch) DeleteBatch(ctx context.Context, objs []prune.Object) []error {
	errs := make([]error, len(objs))
	if err := i.inval.start(ctx); err != nil {
		for k := range errs {
			errs[k] = err
		}
		return errs
	}
	var ready []int // indexes into objs of the objects to delete
	for k, o := range objs {
		if e, ok := i.inval.entriesOf(o); ok {
			if errs[k] = i.inval.invalidate(ctx, e.what, e.keys, false, e.remove); errs[k] != nil {
				continue
			}
		}
		ready = append(ready, k)
	}
	batch := objs
	if len(ready) < len(objs) {
		batch = make([]prune.Object, len(ready))
		for j, k := range ready {
			batch[j] = objs[k]
		}
	}
	for j, err := range i.batches.DeleteBatch(ctx, batch) {
		k := ready[j]
		if errs[k] = err; err != nil {
			continue
		}
		if e, ok := i.inval.entriesOf(objs[k]); ok {
			errs[k] = i.inval.invalidate(ctx, e.what, e.keys, true, e.remove)
		}
	}
	return errs
}
