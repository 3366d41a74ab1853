package storage

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	// The storage drivers an administrator's configuration may name. Each registers itself
	// with distribution's factory, which both the registry server and OpenDriver create
	// drivers through; each also needs its row in driverTraits.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)

// OpenDriver creates the storage driver that the configuration's storage section names, with
// its parameters. purpose, when not empty, tells in the error what the driver was wanted for
// (e.g. "to watch for prunes").
func OpenDriver(ctx context.Context, cfg configuration.Storage, purpose string) (driver.StorageDriver, error) {
	drv, err := factory.Create(ctx, cfg.Type(), cfg.Parameters())
	if err != nil {
		what := "the " + cfg.Type() + " storage driver"
		if purpose != "" {
			what += " " + purpose
		}
		return nil, fmt.Errorf("creating %s: %w", what, err)
	}
	return drv, nil
}

// Location says where the configured driver keeps its data, for messages: a directory, or
// s3://<bucket>/<rootdirectory>.
func Location(cfg configuration.Storage) string {
	params := cfg.Parameters()
	root, _ := params["rootdirectory"].(string)
	switch cfg.Type() {
	case "filesystem":
		if root == "" {
			root = "/var/lib/registry" // distribution's default
		}
	case "s3", "s3aws":
		if bucket, _ := params["bucket"].(string); bucket != "" {
			root = "s3://" + bucket + path.Join("/", root)
		}
	}
	return strings.TrimSuffix(root, "/")
}

// DriverTraits is what the inventory and the deletion must know of how a driver stores.
type DriverTraits struct {
	// FlatListing: the keys are one flat namespace, as on object stores. Walk is a paged
	// listing of every key below a prefix (1000 keys a request on S3), so splitting a walk by
	// directory would only add requests; and "directories" are mere key prefixes, which
	// vanish with their last key, so there are no empty ones to remove.
	FlatListing bool
	// KeyRanges: Walk lists keys in byte order, starts after the key WithStartAfterHint
	// names, and stops asking for pages when the walk function returns ErrFilledBuffer; so
	// the flat listing can be split into key ranges listed at once (see rangedInventory).
	KeyRanges bool
	// keyDeleter, if set, opens the store's multi-object delete on the driver: the sweep then
	// deletes links and blobs in batches of exact keys (see Store.Remover).
	keyDeleter func(driver.StorageDriver) (keyDeleter, error)
}

// driverTraits is keyed by the driver's Name(). A driver without a row gets the zero traits:
// a directory tree, walked shard by shard.
var driverTraits = map[string]DriverTraits{
	"azure":      {FlatListing: true},
	"filesystem": {},
	"gcs":        {FlatListing: true},
	"inmemory":   {},
	"s3aws":      {FlatListing: true, KeyRanges: true, keyDeleter: openS3KeyDeleter},
}

// traitsOf returns the traits of the driver named name (driver.StorageDriver.Name()).
func traitsOf(name string) DriverTraits {
	return driverTraits[name]
}
