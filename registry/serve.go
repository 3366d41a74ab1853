// Package registry assembles the registry server from the configuration: distribution's
// server, with the repository middleware that records pushes in the image API, the openshift
// access controller (package access) when the configuration names it, /healthz, and the
// scheduled ordinary prune (openshift.pruning, see ScheduledPrune).
package registry

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	distregistry "github.com/distribution/distribution/v3/registry"
	"github.com/distribution/distribution/v3/registry/auth"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	diststorage "github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hardprune/image-registry/cache"
	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/online"
	"github.com/hardprune/image-registry/registry/access"

	// Also registers the storage drivers an administrator's configuration may name.
	"github.com/hardprune/image-registry/storage"
)

func init() {
	// OpenShift's registry configurations also name "openshift" registry and storage
	// middlewares; accept them, so that an existing configuration starts unchanged.
	must(
		registrymiddleware.Register(
			MiddlewareName,
			func(_ context.Context, ns distribution.Namespace, _ storagedriver.StorageDriver, _ map[string]any) (distribution.Namespace, error) {
				return ns, nil
			},
		),
	)
	must(
		storagemiddleware.Register(
			MiddlewareName,
			func(_ context.Context, d storagedriver.StorageDriver, _ map[string]any) (storagedriver.StorageDriver, error) {
				return d, nil
			},
		),
	)
}

func init() {
	// Distribution applies registered handlers around its app when NewRegistry builds it; the
	// delete endpoints Serve sets up then answer in front of it.
	distregistry.RegisterHandler(func(_ *configuration.Configuration, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := activeDeletes.Load(); d != nil {
				d.Wrap(next).ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
}

// onlineReplica is this registry's part in the online prune protocol while Serve runs.
var onlineReplica *online.Replica

// newReplica is this registry's part in the online prune protocol (package online), with the
// protocol version it advertises.
func newReplica(drv storagedriver.StorageDriver) (*online.Replica, error) {
	protocol, err := online.AdvertisedProtocol()
	if err != nil {
		return nil, err
	}
	if protocol < online.ProtocolVersion {
		logrus.Warnf("%s=%d: this registry advertises protocol %d of the online prune and takes no part in it: "+
			"-prune=delete refuses to run while it serves, unless the registry is read-only", online.ProtocolEnv, protocol, protocol)
	}
	return &online.Replica{
		Driver:   drv,
		Protocol: protocol,
		Log:      logrus.WithField("component", "online prune"),
	}, nil
}

// activeDeletes are the delete endpoints of the registry Serve runs, nil outside Serve.
var activeDeletes atomic.Pointer[Deletes]

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// Serve runs the registry's HTTP API until ctx ends or the server fails.
func Serve(ctx context.Context, cfg *config.Config) error {
	restCfg, source, err := imageapi.RESTConfig(cfg.OpenShift.KubeConfig)
	if err != nil {
		return fmt.Errorf("the registry records pushes in the image API: %w", err)
	}
	client, err := imageapi.NewClient(imageapi.WithRateLimit(restCfg))
	if err != nil {
		return fmt.Errorf("creating the image API client: %w", err)
	}
	recorder = &Recorder{Client: client, ServerAddr: cfg.OpenShift.Server.Addr}
	if err := setupAccess(cfg, restCfg); err != nil {
		return err
	}
	ensureRepositoryMiddleware(cfg.Distribution)
	// What distribution's app sees: the configuration without the blob descriptor cache, which
	// the registry builds itself (below); the rest of the registry (the scheduled prune's
	// cache invalidation) still reads the cache from cfg.
	appCfg := *cfg.Distribution
	appCfg.Storage = maps.Clone(cfg.Distribution.Storage)
	// A driver of our own, for the delete endpoints, the prune marker and what streams use:
	// the app's is out of reach, and none of them needs its storage middleware.
	drv, err := storage.OpenDriver(ctx, cfg.Distribution.Storage, "")
	if err != nil {
		return err
	}
	if err := serveWhatStreamsUse(client, drv); err != nil {
		return err
	}
	replica, err := newReplica(drv)
	if err != nil {
		return err
	}
	redisKind := cache.BlobDescriptorCache(cfg.Distribution) == "redis"
	memory, inMemory, err := setupInMemoryCache(ctx, cfg, drv, replica.Bypass, appCfg.Storage)
	if err != nil {
		return err
	}
	redisCache, err := setupRedisCache(cfg, replica.Bypass, appCfg.Storage)
	if err != nil {
		return err
	}
	// Once a run is over (and settled): what the in-memory cache held from before it may
	// describe what it deleted; Redis entries the prune removed itself.
	replica.OnRunEnd = func() {
		if memory != nil {
			memory.Reset()
		}
		for _, c := range []*cache.Bypassable{inMemory, redisCache} {
			if c != nil {
				c.ForgetBypassed()
			}
		}
	}
	// Before the first request: a registry that starts while a prune runs takes part in it.
	if err := replica.Start(ctx); err != nil {
		return err
	}
	onlineReplica = replica
	// The replica outlives ctx: it stops (fenced, its advert removed) only once the server
	// has finished the requests under way, in the deferred call below, and Serve returns
	// after that: a registry that stopped is not one a prune waits for.
	replicaCtx, stopReplica := context.WithCancel(context.WithoutCancel(ctx))
	replicaDone := make(chan struct{})
	go func() { defer close(replicaDone); replica.Run(replicaCtx) }()
	defer func() {
		stopReplica()
		<-replicaDone
		onlineReplica = nil
	}()
	deletes, err := newDeletes(cfg, drv, redisKind, memory, client)
	if err != nil {
		return err
	}
	defer deletes.close()
	for _, w := range cfg.Warnings {
		logrus.Warn(w)
	}
	if recorder.ServerAddr == "" {
		logrus.Warn("openshift.server.addr is not set (nor REGISTRY_OPENSHIFT_SERVER_ADDR): the Images pushes " +
			"create name no registry (<namespace>/<name>@<digest>) and image streams get no dockerImageRepository")
	}
	logrus.WithFields(logrus.Fields{
		"credentials": source, "server": restCfg.Host, "readonly": cfg.ReadOnly(), "address": recorder.ServerAddr,
		"auth": authDescription(cfg),
	}).Info("starting the registry")

	quietTracing(logrus.StandardLogger())
	reg, err := newRegistry(ctx, &appCfg)
	if err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
	// After the app, which builds its own first: building one may have effects (distribution's
	// htpasswd controller creates a missing file), which the app's should have.
	if deletes.Access, err = accessController(cfg.Distribution); err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
	activeDeletes.Store(deletes.Deletes)
	defer activeDeletes.Store(nil)
	stopPruning, err := startScheduledPrune(ctx, cfg, func() (kubernetes.Interface, error) {
		return kubernetes.NewForConfig(restCfg)
	}, logrus.WithField("component", "scheduled prune"))
	if err != nil {
		return err
	}
	// Deferred: it ends with Serve's context, its running prune's context too, and Serve
	// returns once the Lease is released.
	defer stopPruning()
	errc := make(chan error, 1)
	go func() { errc <- reg.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return reg.Shutdown(context.Background())
	}
}

// serveWhatStreamsUse makes each repository serve what its image stream uses, linked or not
// (see streamAccess). Distribution's app takes the statter's wrapper as a registry option.
func serveWhatStreamsUse(client imageclient.ImageV1Interface, drv storagedriver.StorageDriver) error {
	streams = newStreamAccess(client, drv)
	return registrymiddleware.RegisterOptions(diststorage.BlobDescriptorServiceFactory(streams))
}

// setupAccess builds the openshift access controller when the configuration names it (auth:
// openshift), asking the cluster of the registry's kubeconfig; and says how the endpoints
// outside distribution's app are authorized.
func setupAccess(cfg *config.Config, restCfg *rest.Config) error {
	openshiftAccess = nil
	if !cfg.OpenShiftAuth {
		open := cfg.Distribution.Auth.Type() == ""
		if open {
			logrus.Warn("the configuration names no access controller (auth: openshift: {} in OpenShift's): " +
				"anyone who reaches the registry can pull, push and delete")
		}
		access.Setup(nil, open)
		return nil
	}
	reviewer, err := access.NewClusterReviewer(restCfg)
	if err != nil {
		return err
	}
	openshiftAccess = access.New(reviewer, access.Options{
		Realm:      cfg.OpenShift.Auth.Realm,
		TokenRealm: cfg.OpenShift.Auth.TokenRealmURL(),
		Log:        logrus.WithField("component", "access"),
	})
	access.Setup(openshiftAccess, false)
	return nil
}

func authDescription(cfg *config.Config) string {
	switch {
	case cfg.OpenShiftAuth:
		return "openshift (every request reviewed by the cluster)"
	case cfg.Distribution.Auth.Type() == "":
		return "none"
	}
	return cfg.Distribution.Auth.Type()
}

// newRegistry is distribution's NewRegistry, whose app panics on much of what a configuration
// can get wrong (an access controller or middleware nobody registered, a driver that does not
// start): the panic comes back as an error, one line for the administrator.
func newRegistry(ctx context.Context, dcfg *configuration.Configuration) (reg *distregistry.Registry, err error) {
	defer func() {
		if p := recover(); p != nil {
			reg, err = nil, fmt.Errorf("%s", strings.Join(strings.Fields(fmt.Sprint(p)), " "))
		}
	}()
	return distregistry.NewRegistry(ctx, dcfg)
}

// ensureRepositoryMiddleware adds the image-stream middleware unless the configuration names it.
func ensureRepositoryMiddleware(dcfg *configuration.Configuration) {
	for _, m := range dcfg.Middleware["repository"] {
		if m.Name == MiddlewareName {
			return
		}
	}
	if dcfg.Middleware == nil {
		dcfg.Middleware = map[string][]configuration.Middleware{}
	}
	dcfg.Middleware["repository"] = append(
		dcfg.Middleware["repository"],
		configuration.Middleware{Name: MiddlewareName},
	)
}

// servedDeletes are the delete endpoints with what Serve must release.
type servedDeletes struct {
	*Deletes
	close func()
}

// newDeletes sets up the delete endpoints over drv, with the cache invalidation the
// configuration's blob descriptor cache needs: redis says it is Redis, memory is the in-memory
// cache setupInMemoryCache set up (nil if none). Access is left to the caller.
func newDeletes(
	cfg *config.Config,
	drv storagedriver.StorageDriver,
	redisKind bool,
	memory *cache.ResettableMemory,
	streams imageclient.ImageStreamsGetter,
) (servedDeletes, error) {
	dcfg := cfg.Distribution
	log := logrus.WithField("component", "delete endpoints")
	store := &storage.Store{Driver: drv, Log: log, Root: storage.Location(dcfg.Storage)}
	serving := &cache.Serving{Remover: store, Memory: memory}
	closeRedis := func() {}
	switch {
	case redisKind:
		client, err := cache.NewRedisClient(dcfg.Redis)
		if err != nil {
			return servedDeletes{}, err
		}
		serving.Redis = &cache.RedisInvalidator{Client: client}
		closeRedis = func() { _ = client.Close() }
	case memory != nil:
		// The other replicas' caches: they watch the marker, as for a hard prune.
		serving.Marker = &cache.MarkerPulse{Driver: drv, Log: log}
	}
	enabled, _ := dcfg.Storage["delete"]["enabled"].(bool) // distribution takes a bool only
	return servedDeletes{
		Deletes: &Deletes{
			Store:         store,
			Remover:       serving,
			Streams:       streams,
			DeleteEnabled: enabled,
			ReadOnly:      cfg.ReadOnly(),
			Prefix:        dcfg.HTTP.Prefix,
			Log:           log,
		},
		close: closeRedis,
	}, nil
}

// accessController builds the access controller the auth section names, as distribution's
// app does for its own routes (nil without one), for the delete endpoints to ask.
func accessController(dcfg *configuration.Configuration) (auth.AccessController, error) {
	kind := dcfg.Auth.Type()
	if kind == "" || strings.EqualFold(kind, "none") {
		return nil, nil
	}
	ac, err := auth.GetAccessController(kind, dcfg.Auth.Parameters())
	if err != nil {
		return nil, fmt.Errorf("unable to configure authorization (%s): %w", kind, err)
	}
	return ac, nil
}
