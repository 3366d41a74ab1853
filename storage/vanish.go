package storage

import (
	"context"
	"errors"
	"io/fs"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// walkDriver is the driver whose Walk the store calls for root. Drivers that walk by listing
// each directory (distribution's WalkFallback) fail the whole walk when a directory below root
// goes away between its listing and its own: a finished upload removes its _uploads/<id>
// directory, the ordinary prune's calls remove links. While the registry serves (an online
// prune, a check on a live registry) that is routine, so for those drivers a directory that has
// gone is walked as empty. Missing it from the inventory is safe: what is not listed is not
// deleted. Object stores list keys, not directories, and keep their own Walk.
func (s *Store) walkDriver(root string) driver.StorageDriver {
	switch s.Driver.Name() {
	case "filesystem", "inmemory", "azure", "gcs":
		return vanishingDirs{StorageDriver: s.Driver, root: root}
	}
	return s.Driver
}

// vanishingDirs lists a directory below root that no longer exists as empty.
type vanishingDirs struct {
	driver.StorageDriver
	root string
}

func (d vanishingDirs) List(ctx context.Context, p string) ([]string, error) {
	children, err := d.StorageDriver.List(ctx, p)
	switch {
	case err == nil || !vanished(err):
		return children, err
	case p == d.root:
		// The caller tells a missing root from an empty one.
		return nil, driver.PathNotFoundError{Path: p, DriverName: d.Name()}
	}
	return nil, nil
}

// Stat stats p. A path the driver refuses to name (distribution's drivers accept only
// [A-Za-z0-9._-] in a path's elements) is one the registry cannot have written: the driver's
// own walk, which goes below that check, would list what is under it only for the inventory to
// skip it, so it is given as one file, which the inventory skips with a warning.
func (d vanishingDirs) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fi, err := d.StorageDriver.Stat(ctx, p)
	var invalid driver.InvalidPathError
	if errors.As(err, &invalid) && p != d.root {
		return driver.FileInfoInternal{FileInfoFields: driver.FileInfoFields{Path: p}}, nil
	}
	return fi, err
}

// Walk walks by listing, through d's List.
func (d vanishingDirs) Walk(ctx context.Context, p string, f driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	return driver.WalkFallback(ctx, d, p, f, opts...)
}

// vanished says whether err is a driver's way of saying the path does not exist: its
// PathNotFoundError, or, for a directory removed while it was being read, the operating
// system's error inside the driver's catch-all one.
func vanished(err error) bool {
	var notFound driver.PathNotFoundError
	if errors.As(err, &notFound) {
		return true
	}
	var other driver.Error
	if errors.As(err, &other) && other.Detail != nil {
		return errors.Is(other.Detail, fs.ErrNotExist)
	}
	return errors.Is(err, fs.ErrNotExist)
}
