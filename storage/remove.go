package storage

import (
	"context"
	"errors"
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

// DeleteRepository removes a repository. A repository with nested repositories below it loses
// only its own data directories.
func (s *Store) DeleteRepository(ctx context.Context, a prune.RepositoryAction) error {
	if !a.OnlyDataDirs {
		if err := s.remove(ctx, RepositoryPath(a.Name)); err != nil {
			return err
		}
		s.removeEmptyParents(ctx, path.Dir(RepositoryPath(a.Name)))
		return nil
	}
	for _, dir := range RepositoryDataDirs {
		if err := s.remove(ctx, RepositoryDataPath(a.Name, dir)); err != nil {
			return err
		}
	}
	// The nested repositories may be gone too (removed at the same time, by another worker):
	// then the repository's own directory is empty.
	s.removeEmptyParents(ctx, RepositoryPath(a.Name))
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
			s.log().WithField("path", dir).WithError(err).Warn("cannot list a directory that may have become empty; leaving it")
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

// DeleteTag removes a tag: its current link first, then the rest. Removing a directory is not
// atomic, and the other order could leave a current link whose index entry is gone, which a
// later run would read as a tag whose index all stays; this order leaves at worst an index
// without a current link, a tag no one serves, which the next run removes.
func (s *Store) DeleteTag(ctx context.Context, a prune.TagAction) error {
	if err := s.remove(ctx, TagCurrentPath(a.Repository, a.Tag)); err != nil {
		return err
	}
	return s.remove(ctx, TagPath(a.Repository, a.Tag))
}

// DeleteTagIndexEntry removes one entry of a tag's index.
func (s *Store) DeleteTagIndexEntry(ctx context.Context, a prune.TagIndexAction) error {
	return s.remove(ctx, TagIndexEntryPath(a.Repository, a.Tag, a.Digest))
}

// DeleteManifestLink removes a manifest revision link.
func (s *Store) DeleteManifestLink(ctx context.Context, a prune.LinkAction) error {
	return s.remove(ctx, ManifestRevisionPath(a.Repository, a.Digest))
}

// DeleteLayerLink removes a layer link.
func (s *Store) DeleteLayerLink(ctx context.Context, a prune.LinkAction) error {
	return s.remove(ctx, LayerLinkDirPath(a.Repository, a.Digest))
}

// DeleteUpload removes an unfinished upload.
func (s *Store) DeleteUpload(ctx context.Context, a prune.UploadAction) error {
	return s.remove(ctx, UploadPath(a.Repository, a.ID))
}

// DeleteBlob removes a blob.
func (s *Store) DeleteBlob(ctx context.Context, a prune.BlobAction) error {
	return s.remove(ctx, BlobDirPath(a.Digest))
}
