package cache

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	rediscache "github.com/distribution/distribution/v3/registry/storage/cache/redis"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// TestServingInvalidatesRedis: what a delete endpoint removes, distribution's Redis cache no
// longer describes; what stays, it still does. A Redis that cannot be reached stops the
// deletion before it happens.
func TestServingInvalidatesRedis(t *testing.T) {
	ctx := context.Background()
	srv := harness.StartRedisT(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	provider := rediscache.NewRedisBlobDescriptorCacheProvider(client)
	drv := inmemory.New()
	store := &storage.Store{Driver: drv}
	s := &Serving{Remover: store, Redis: &RedisInvalidator{Client: client}}

	layer, other := digest.FromString("layer"), digest.FromString("other")
	for _, repo := range []string{"ns/app", "ns/other"} {
		svc, err := provider.RepositoryScoped(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []digest.Digest{layer, other} {
			desc := v1.Descriptor{Digest: d, Size: 1, MediaType: "application/octet-stream"}
			if err := svc.SetDescriptor(ctx, d, desc); err != nil {
				t.Fatal(err)
			}
			if err := drv.PutContent(ctx, storage.LayerLinkPath(repo, d), []byte(d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	stat := cachedStat(ctx, provider)

	if err := s.Delete(ctx, prune.Object{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: layer}); err != nil {
		t.Fatal(err)
	}
	if err := stat("ns/app", layer); !errors.Is(err, distribution.ErrBlobUnknown) {
		t.Errorf("the deleted link is still cached (%v)", err)
	}
	for _, kept := range [][2]string{{"ns/other", layer.String()}, {"", layer.String()}, {"ns/app", other.String()}} {
		if err := stat(kept[0], digest.Digest(kept[1])); err != nil {
			t.Errorf("%q %s was invalidated: %v", kept[0], kept[1], err)
		}
	}

	// The blob: every repository's description of it rests on the global one.
	if err := s.Delete(ctx, prune.Object{Kind: prune.KindBlob, Digest: other}); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"", "ns/app", "ns/other"} {
		if err := stat(repo, other); !errors.Is(err, distribution.ErrBlobUnknown) {
			t.Errorf("%q: the deleted blob is still cached (%v)", repo, err)
		}
	}

	// Redis gone: the link stays, and the error says why.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer down.Close()
	s.Redis = &RedisInvalidator{Client: down}
	o := prune.Object{Kind: prune.KindLayerLink, Repository: "ns/other", Digest: layer}
	if err := s.Delete(ctx, o); err == nil {
		t.Fatal("deleted without invalidating")
	}
	if found, err := store.Stored(ctx, o); err != nil || !found {
		t.Errorf("the link was deleted although its cache entries could not be (%v, %v)", found, err)
	}
}

// puts counts the writes of a driver and can fail the first ones.
type puts struct {
	driver.StorageDriver
	mu    sync.Mutex
	times []time.Time
	fail  int // how many writes fail first
}

func (p *puts) PutContent(ctx context.Context, path string, content []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		return errors.New("storage says no")
	}
	p.times = append(p.times, time.Now())
	return p.StorageDriver.PutContent(ctx, path, content)
}

func (p *puts) written() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.times...)
}

// TestMarkerPulse: deletions in a row share a few marker writes, the last of them at least
// Delay after the last deletion (so that its modification time falls in a later second where
// storage keeps seconds only), and a replica's watcher sees it; a failed write is retried.
func TestMarkerPulse(t *testing.T) {
	ctx := context.Background()
	drv := &puts{StorageDriver: inmemory.New(), fail: 1}
	log := logrus.New()
	log.SetOutput(io.Discard)
	const delay = 50 * time.Millisecond
	p := &MarkerPulse{Driver: drv, Delay: delay, Log: log}
	resets := 0
	w := &MarkerWatcher{Driver: drv, OnChange: func() { resets++ }}
	w.Poll(ctx)

	var last time.Time
	for range 20 {
		p.Deleted()
		last = time.Now()
		time.Sleep(5 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		running := p.running
		p.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pulse still runs 5s after the last deletion")
		}
		time.Sleep(10 * time.Millisecond)
	}
	writes := drv.written()
	// 20 deletions over ~100ms, one write per 50ms at most, one failure retried.
	if len(writes) == 0 || len(writes) > 5 {
		t.Fatalf("%d marker writes, want a few", len(writes))
	}
	if lag := writes[len(writes)-1].Sub(last); lag < delay {
		t.Errorf("the last write came %v after the last deletion, want at least %v", lag, delay)
	}
	if !w.Poll(ctx) || resets != 1 {
		t.Errorf("the replica's watcher did not see the marker change (resets = %d)", resets)
	}
	var nilPulse *MarkerPulse
	nilPulse.Deleted() // no in-memory cache, no marker
}
