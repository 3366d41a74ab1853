package registry

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	diststorage "github.com/distribution/distribution/v3/registry/storage"
	rediscache "github.com/distribution/distribution/v3/registry/storage/cache/redis"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/cache"
	"github.com/hardprune/image-registry/config"
)

// PollIntervalEnv overrides openshift.cache.pollinterval: how often a registry with the
// in-memory blob descriptor cache looks for a hard prune (a Go duration; 0 turns it off).
const PollIntervalEnv = "REGISTRY_OPENSHIFT_CACHE_POLLINTERVAL"

// setupInMemoryCache replaces the in-memory blob descriptor cache distribution would build
// (from app, the storage section distribution's app sees) with one a hard prune can empty,
// bypassed while bypass says so (while an online prune runs), and starts watching the prune marker through drv until ctx
// ends. It returns that cache (nil when the configuration names another), for the delete
// endpoints to drop what they delete from it.
//
// Distribution builds its cache provider inside handlers.NewApp from storage.cache, out of
// reach. But NewApp applies the options of registrymiddleware.RegisterOptions first and the
// cache of storage.cache after them, so: take the cache out of the configuration the app sees
// and register our provider as an option; it is then the only provider the registry uses.
// The Redis cache needs none of this: the prune removes its entries itself.
func setupInMemoryCache(
	ctx context.Context,
	cfg *config.Config,
	drv storagedriver.StorageDriver,
	bypass func() bool,
	app configuration.Storage,
) (*cache.ResettableMemory, *cache.Bypassable, error) {
	dcfg := cfg.Distribution
	if cache.BlobDescriptorCache(dcfg) != "inmemory" {
		return nil, nil, nil
	}
	size := 0
	if v, ok := dcfg.Storage["cache"]["blobdescriptorsize"]; ok {
		var err error
		if size, err = strconv.Atoi(fmt.Sprint(v)); err != nil {
			return nil, nil, fmt.Errorf("storage.cache.blobdescriptorsize %v: %w", v, err)
		}
	}
	interval, err := pollInterval(cfg)
	if err != nil {
		return nil, nil, err
	}
	provider := cache.NewResettableMemory(size)
	delete(app, "cache")
	bypassable := &cache.Bypassable{BlobDescriptorCacheProvider: provider, Bypass: bypass}
	if err := registrymiddleware.RegisterOptions(diststorage.BlobDescriptorCacheProvider(bypassable)); err != nil {
		return nil, nil, err
	}
	log := logrus.WithField("component", "blob descriptor cache")
	if interval == 0 {
		log.Warn("in-memory blob descriptor cache without prune polling: restart the registry after each hard prune")
		return provider, bypassable, nil
	}
	w := &cache.MarkerWatcher{Driver: drv, Interval: interval, OnChange: provider.Reset, Log: log}
	go w.Run(ctx)
	log.WithField("pollinterval", interval).Info("using a resettable in-memory blob descriptor cache")
	return provider, bypassable, nil
}

// setupRedisCache replaces the Redis blob descriptor cache distribution would build with the
// same cache, bypassed while bypass says so (while an online prune runs), as
// setupInMemoryCache does for the in-memory one.
func setupRedisCache(cfg *config.Config, bypass func() bool, app configuration.Storage) (*cache.Bypassable, error) {
	dcfg := cfg.Distribution
	if cache.BlobDescriptorCache(dcfg) != "redis" {
		return nil, nil
	}
	client, err := cache.NewRedisClient(dcfg.Redis)
	if err != nil {
		return nil, err
	}
	provider := rediscache.NewRedisBlobDescriptorCacheProvider(client)
	delete(app, "cache")
	bypassable := &cache.Bypassable{BlobDescriptorCacheProvider: provider, Bypass: bypass}
	return bypassable, registrymiddleware.RegisterOptions(diststorage.BlobDescriptorCacheProvider(bypassable))
}

// pollInterval reads openshift.cache.pollinterval (or PollIntervalEnv, which the
// configuration loader applies); cache.DefaultPollInterval when neither is set.
func pollInterval(cfg *config.Config) (time.Duration, error) {
	v, what := cfg.OpenShift.Cache.PollInterval, "openshift.cache.pollinterval"
	if os.Getenv(PollIntervalEnv) != "" {
		what = PollIntervalEnv
	}
	if v == "" {
		return cache.DefaultPollInterval, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 5s, or 0 to turn polling off", what, v)
	}
	return d, nil
}
