package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/hardprune/image-registry/prune"
)

// deleteBackoff retries a failed deletion a few times: object stores answer with the odd 5xx
// or throttling error on long runs, and giving up the whole sweep for one is worse.
var deleteBackoff = wait.Backoff{Steps: 4, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1}

// remove deletes a path. A path that is already gone counts as deleted, so that a second run
// after an interrupted one finishes the job.
func (s *Store) remove(ctx context.Context, p string) error {
	return retry.OnError(deleteBackoff, func(err error) bool { return ctx.Err() == nil }, func() error {
		err := s.Driver.Delete(ctx, p)
		var notFound driver.PathNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		return err
	})
}

// Delete removes one object of a plan: the path paths.go gives its kind.
func (s *Store) Delete(ctx context.Context, o prune.Object) error {
	switch o.Kind {
	case prune.KindRepository:
		return s.deleteRepository(ctx, o)
	case prune.KindTag:
		// The current link first, then the rest. Removing a directory is not atomic, and the
		// other order could leave a current link whose index entry is gone, which a later run
		// would read as a tag whose index all stays; this order leaves at worst an index
		// without a current link, a tag no one serves, which the next run removes.
		if err := s.remove(ctx, TagCurrentPath(o.Repository, o.Name)); err != nil {
			return err
		}
		return s.remove(ctx, TagPath(o.Repository, o.Name))
	case prune.KindTagIndexEntry:
		return s.remove(ctx, TagIndexEntryPath(o.Repository, o.Name, o.Digest))
	case prune.KindManifestLink:
		return s.remove(ctx, ManifestRevisionPath(o.Repository, o.Digest))
	case prune.KindLayerLink:
		return s.remove(ctx, LayerLinkDirPath(o.Repository, o.Digest))
	case prune.KindUpload:
		return s.remove(ctx, UploadPath(o.Repository, o.Name))
	case prune.KindBlob:
		return s.remove(ctx, BlobDirPath(o.Digest))
	}
	return fmt.Errorf("no storage path for a %s", o.Kind)
}

// deleteRepository removes a repository. A repository with nested repositories below it
// loses only its own data directories.
func (s *Store) deleteRepository(ctx context.Context, o prune.Object) error {
	if !o.Nested {
		if err := s.remove(ctx, RepositoryPath(o.Repository)); err != nil {
			return err
		}
		s.removeEmptyParents(ctx, path.Dir(RepositoryPath(o.Repository)))
		return nil
	}
	for _, dir := range RepositoryDataDirs {
		if err := s.remove(ctx, RepositoryDataPath(o.Repository, dir)); err != nil {
			return err
		}
	}
	// The nested repositories may be gone too (removed at the same time, by another worker):
	// then the repository's own directory is empty.
	s.removeEmptyParents(ctx, RepositoryPath(o.Repository))
	return nil
}

// Stored tells whether an object of a plan is still in storage: whether any of the paths
// that make it up is there.
func (s *Store) Stored(ctx context.Context, o prune.Object) (bool, error) {
	paths := storedPaths(o)
	if len(paths) == 0 {
		return false, fmt.Errorf("no storage path for a %s", o.Kind)
	}
	for _, p := range paths {
		_, err := s.Driver.Stat(ctx, p)
		var notFound driver.PathNotFoundError
		if errors.As(err, &notFound) {
			continue
		}
		return err == nil, err
	}
	return false, nil
}

// storedPaths are the paths whose presence (any of them) says an object is still stored.
func storedPaths(o prune.Object) []string {
	switch o.Kind {
	case prune.KindRepository:
		// A repository goes whole, or (with nested ones) data directory by data directory.
		var paths []string
		for _, dir := range RepositoryDataDirs {
			paths = append(paths, RepositoryDataPath(o.Repository, dir))
		}
		return paths
	case prune.KindTag:
		return []string{TagPath(o.Repository, o.Name)}
	case prune.KindTagIndexEntry:
		return []string{TagIndexEntryPath(o.Repository, o.Name, o.Digest)}
	case prune.KindManifestLink:
		return []string{ManifestRevisionPath(o.Repository, o.Digest)}
	case prune.KindLayerLink:
		return []string{LayerLinkDirPath(o.Repository, o.Digest)}
	case prune.KindUpload:
		return []string{UploadPath(o.Repository, o.Name)}
	case prune.KindBlob:
		return []string{BlobDataPath(o.Digest)}
	}
	return nil
}

// removeEmptyParents removes dir and then each of its parents, up to but not including
// RepositoriesPath, while they are empty directories: what removing ns/parent/kid and
// ns/parent leaves on a filesystem. Object stores have no directories, so nothing is done there.
//
// The drivers have no "remove if empty" (the filesystem driver's Delete removes recursively),
// so each directory is listed right before it is deleted, and only an empty one goes. A
// repository pushed into it between the two calls would lose what it wrote in that instant;
// the race is accepted: -prune=delete runs on a read-only registry, and the window is one
// directory listing long. When two repositories below one directory go at once, each worker
// tries after its own removal, so the later one finds the directory empty.
//
// A failure leaves an empty directory, which is harmless: it is logged, not returned.
func (s *Store) removeEmptyParents(ctx context.Context, dir string) {
	if traitsOf(s.Driver.Name()).FlatListing {
		return
	}
	for ; strings.HasPrefix(dir, RepositoriesPath+"/"); dir = path.Dir(dir) {
		children, err := s.Driver.List(ctx, dir)
		var notFound driver.PathNotFoundError
		switch {
		case errors.As(err, &notFound):
			continue // already gone: its parent may be empty now
		case err != nil:
			s.log().
				WithField("path", dir).
				WithError(err).
				Warn("cannot list a directory that may have become empty; leaving it")
			return
		case len(children) > 0:
			return
		}
		if err := s.Driver.Delete(ctx, dir); err != nil && !errors.As(err, &notFound) {
			s.log().WithField("path", dir).WithError(err).Warn("cannot remove an empty directory; leaving it")
			return
		}
	}
}
