// Package registry assembles the registry server from the configuration.
package registry

import (
	"context"
	"fmt"

	distregistry "github.com/distribution/distribution/v3/registry"

	// The storage drivers an administrator's configuration may name.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

	"github.com/hardprune/image-registry/config"
)

// Serve runs the registry's HTTP API until it fails.
func Serve(ctx context.Context, cfg *config.Config) error {
	reg, err := distregistry.NewRegistry(ctx, cfg.Distribution)
	if err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
	return reg.ListenAndServe()
}
