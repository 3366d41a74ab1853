package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// ErrRepositoryNotFound is wrapped by the error of a listing of a repository that storage does
// not hold.
var ErrRepositoryNotFound = errors.New("not in storage")

// Repositories calls fn with the name of every repository in storage, in order. Names that no
// storage driver can address are left out (the inventory warns about them).
func (s *Store) Repositories(ctx context.Context, fn func(name string) error) error {
	seen := map[string]bool{}
	if _, err := s.walkEntries(ctx, RepositoriesPath, func(e Entry) error {
		seen[e.Repository] = true
		return nil
	}); err != nil {
		return err
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := fn(name); err != nil {
			return err
		}
	}
	return nil
}

// Blobs calls fn with the digest of every blob as the walk finds it (in digest order on every
// driver we know), holding none of them: millions take no memory.
func (s *Store) Blobs(ctx context.Context, fn func(digest.Digest) error) error {
	_, err := s.walkEntries(ctx, BlobsPath, func(e Entry) error {
		if e.Kind != KindBlobData {
			return nil
		}
		return fn(e.Digest)
	})
	return err
}

// Manifests calls fn with the digest of every manifest that repo links, in order. A repository
// storage does not hold is an error wrapping ErrRepositoryNotFound.
func (s *Store) Manifests(ctx context.Context, repo string, fn func(digest.Digest) error) error {
	var manifests []digest.Digest
	found, err := s.walkEntries(ctx, RepositoryPath(repo), func(e Entry) error {
		// The walk also goes through the repositories nested in repo.
		if e.Kind == KindManifestRevisionLink && e.Repository == repo {
			manifests = append(manifests, e.Digest)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("repository %s is %w", repo, ErrRepositoryNotFound)
	}
	slices.Sort(manifests)
	for _, d := range manifests {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// walkEntries walks root in one listing and calls fn with every file below it that the
// registry writes; others are skipped without a word, the inventory being what warns about
// them. found says whether root exists.
func (s *Store) walkEntries(ctx context.Context, root string, fn func(Entry) error) (found bool, err error) {
	return s.walkFound(ctx, root, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		e, err := ParsePath(fi.Path())
		if err != nil {
			return nil
		}
		return fn(e)
	})
}
