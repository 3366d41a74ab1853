package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// Serving is the cache side of deletions a serving registry makes on request (the calls of
// `oc adm prune images`): a prune.Remover that deletes as Remover does and keeps every blob
// descriptor cache from describing what it deleted, as a hard prune does:
//
//   - Redis: the entries of the object go right before and right after the deletion (see
//     Invalidation.around);
//   - in memory: this process drops what its own cache holds of the object at once, and Marker
//     rewrites the prune marker, so that the other replicas drop their caches too.
//
// Tags and tag index entries have no cache entries; they are only deleted.
type Serving struct {
	Remover prune.Remover
	// Redis is nil unless storage.cache.blobdescriptor is redis.
	Redis *RedisInvalidator
	// Memory and Marker are nil unless storage.cache.blobdescriptor is inmemory.
	Memory *ResettableMemory
	Marker *MarkerPulse
}

var _ prune.Remover = (*Serving)(nil)

// Delete deletes o and invalidates its cache entries.
func (s *Serving) Delete(ctx context.Context, o prune.Object) error {
	inval := &Invalidation{Redis: s.Redis}
	e, cached := inval.entriesOf(o)
	if !cached {
		return s.Remover.Delete(ctx, o)
	}
	err := inval.around(ctx, e, func() error { return s.Remover.Delete(ctx, o) })
	// Even after a failed deletion, which may have removed part of what it was asked to: a
	// dropped entry costs one storage read, a stale one a broken image.
	s.forget(ctx, o)
	s.Marker.Deleted()
	return err
}

// forget drops from this process's in-memory cache what it holds of o.
func (s *Serving) forget(ctx context.Context, o prune.Object) {
	if s.Memory == nil {
		return
	}
	switch o.Kind {
	case prune.KindLayerLink, prune.KindManifestLink:
		if scoped, err := s.Memory.RepositoryScoped(o.Repository); err == nil {
			_ = scoped.Clear(ctx, o.Digest)
		}
	default:
		// A blob is also described under every repository that linked it, and the cache
		// cannot be searched by digest: all of it goes, as after a hard prune.
		s.Memory.Reset()
	}
}

// MarkerPulse rewrites the prune marker (storage.PruneMarkerPath) after deletions a serving
// registry made, so that every replica with an in-memory blob descriptor cache drops it as it
// does after a hard prune (see MarkerWatcher).
//
// A watcher sees a change when the marker's size or modification time differs from what its
// previous look found, and some storage (S3) keeps modification times to the second: two
// writes within one second may look the same. So a deletion is covered by a write made at
// least Delay (over a second) after it: the first look at the marker that finds that write's
// second (later than the deletion's) is a change, whatever writes came before. Deletions in a
// row share writes, at most one per Delay.
type MarkerPulse struct {
	Driver driver.StorageDriver
	Log    logrus.FieldLogger
	// Delay is how long after a deletion the marker is written; DefaultPulseDelay when zero.
	Delay time.Duration
	// Now stamps the marker; time.Now when nil.
	Now func() time.Time

	mu      sync.Mutex
	pending bool   // a deletion happened that no write has been scheduled after
	running bool   // the writer goroutine is under way
	lastErr string // the last write's error, logged once
}

// DefaultPulseDelay is over a second, for storage that keeps modification times to the second.
const DefaultPulseDelay = 1100 * time.Millisecond

// Deleted records that a deletion just finished; the marker is written Delay later. A nil
// pulse does nothing.
func (p *MarkerPulse) Deleted() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = true
	if !p.running {
		p.running = true
		go p.run()
	}
}

// run writes the marker until no deletion is left uncovered. A write that fails is retried
// after another Delay: the replicas keep their caches until one succeeds.
func (p *MarkerPulse) run() {
	for {
		p.mu.Lock()
		if !p.pending {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.pending = false
		p.mu.Unlock()

		time.Sleep(p.delay())
		err := p.write()
		p.mu.Lock()
		if err != nil {
			p.pending = true
			if msg := err.Error(); msg != p.lastErr {
				p.lastErr = msg
				p.log().WithError(err).Warn("cannot rewrite the prune marker after a delete; " +
					"replicas with an in-memory blob descriptor cache keep it until a later write succeeds")
			}
		} else {
			p.lastErr = ""
		}
		p.mu.Unlock()
	}
}

func (p *MarkerPulse) write() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	content := fmt.Sprintf("registry delete at %s\n", now().UTC().Format(markerTimeFormat))
	if err := p.Driver.PutContent(ctx, storage.PruneMarkerPath(), []byte(content)); err != nil {
		return fmt.Errorf("writing the prune marker %s: %w", storage.PruneMarkerPath(), err)
	}
	return nil
}

func (p *MarkerPulse) delay() time.Duration {
	if p.Delay <= 0 {
		return DefaultPulseDelay
	}
	return p.Delay
}

func (p *MarkerPulse) log() logrus.FieldLogger {
	if p.Log == nil {
		return logrus.StandardLogger()
	}
	return p.Log
}
