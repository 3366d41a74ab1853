// Package registry assembles the registry server from the configuration: distribution's
// server, with the repository middleware that records pushes in the image API, the openshift
// access controller (package access) when the configuration names it, and /healthz.
package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	distregistry "github.com/distribution/distribution/v3/registry"
	registrymiddleware "github.com/distribution/distribution/v3/registry/middleware/registry"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
	"github.com/sirupsen/logrus"
	"k8s.io/client-go/rest"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/registry/access"
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
	recorder = &Recorder{Client: client, ServerAddr: cfg.OpenShift.Server.Addr}
	if err := setupAccess(cfg, restCfg); err != nil {
		return err
	}
	ensureRepositoryMiddleware(cfg.Distribution)
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
		"auth": authDescription(cfg),
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

// setupAccess builds the openshift access controller when the configuration names it (auth:
// openshift), asking the cluster of the registry's kubeconfig; and says how the endpoints
// outside distribution's app are authorized.
func setupAccess(cfg *config.Config, restCfg *rest.Config) error {
	accessController = nil
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
	accessController = access.New(reviewer, access.Options{
		Realm:      cfg.OpenShift.Auth.Realm,
		TokenRealm: cfg.OpenShift.Auth.TokenRealmURL(),
		Log:        logrus.WithField("component", "access"),
	})
	access.Setup(accessController, false)
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
