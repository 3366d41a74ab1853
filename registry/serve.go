// Package registry assembles the registry server from the configuration: distribution's
// server, with the repository middleware that records pushes in the image API.
package registry

import (
	"context"
	"fmt"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	distregistry "github.com/distribution/distribution/v3/registry"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
	// Registers the storage drivers an administrator's configuration may name.
	_ "github.com/hardprune/image-registry/storage"
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
	imageAPI = client
	ensureRepositoryMiddleware(cfg.Distribution)
	if err := setupInMemoryCache(ctx, cfg); err != nil {
		return err
	}
	logrus.WithFields(logrus.Fields{"credentials": source, "server": restCfg.Host, "readonly": cfg.ReadOnly()}).
		Info("starting the registry")

	reg, err := distregistry.NewRegistry(ctx, cfg.Distribution)
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
