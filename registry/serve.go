// Package registry assembles the registry server from the configuration: distribution's
// server, with the repository middleware that records pushes in the image API.
package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	distregistry "github.com/distribution/distribution/v3/registry"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	diststorage "github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
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
	client, err := imageapi.NewClient(restCfg)
	if err != nil {
		return fmt.Errorf("creating the image API client: %w", err)
	}
	recorder = &Recorder{Client: client, ServerAddr: cfg.OpenShift.Server.Addr}
	ensureRepositoryMiddleware(cfg.Distribution)
	if err := serveWhatStreamsUse(ctx, cfg, client); err != nil {
		return err
	}
	if err := setupInMemoryCache(ctx, cfg); err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		logrus.Warn(w)
	}
	if recorder.ServerAddr == "" {
		logrus.Warn("openshift.server.addr is not set (nor REGISTRY_OPENSHIFT_SERVER_ADDR): the Images pushes " +
			"create name no registry (<namespace>/<name>@<digest>) and image streams get no dockerImageRepository")
	}
	logrus.WithFields(logrus.Fields{
		"credentials": source, "server": restCfg.Host, "readonly": cfg.ReadOnly(), "address": recorder.ServerAddr,
	}).Info("starting the registry")

	reg, err := newRegistry(ctx, cfg.Distribution)
	if err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
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
func serveWhatStreamsUse(ctx context.Context, cfg *config.Config, client imageclient.ImageV1Interface) error {
	drv, err := storage.OpenDriver(ctx, cfg.Distribution.Storage, "to serve what image streams use")
	if err != nil {
		return err
	}
	streams = newStreamAccess(client, drv)
	return registrymiddleware.RegisterOptions(diststorage.BlobDescriptorServiceFactory(streams))
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
