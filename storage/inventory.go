package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/hardprune/image-registry/prune"
)

// Store reads and deletes the registry's objects through a distribution storage driver.
type Store struct {
	Driver driver.StorageDriver
	// Workers bounds the walks and deletions under way at once.
	Workers int
	Log     logrus.FieldLogger
}

var (
	_ prune.InventorySource = (*Store)(nil)
	_ prune.Remover         = (*Store)(nil)
)

func (s *Store) workers() int {
	if s.Workers < 1 {
		return 1
	}
	return s.Workers
}

func (s *Store) log() logrus.FieldLogger {
	if s.Log == nil {
		return logrus.StandardLogger()
	}
	return s.Log
}

// Inventory walks the blobs and the repositories. Sizes and modification times come from the
// walk itself. Files the registry cannot have written are logged and skipped; any storage error
// fails the inventory, since a partial one could make a referenced blob look unlinked.
func (s *Store) Inventory(ctx context.Context) (*prune.Inventory, error) {
	g, ctx := errgroup.WithContext(ctx)
	var blobs []prune.Blob
	var repos []prune.Repository
	g.Go(func() error {
		var err error
		blobs, err = s.walkBlobs(ctx)
		return err
	})
	g.Go(func() error {
		var err error
		repos, err = s.walkRepositories(ctx)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return &prune.Inventory{Blobs: blobs, Repositories: repos}, nil
}

// walk runs the driver's Walk, treating a missing root as empty storage.
func (s *Store) walk(ctx context.Context, root string, f driver.WalkFn) error {
	err := s.Driver.Walk(ctx, root, f)
	var notFound driver.PathNotFoundError
	if errors.As(err, &notFound) && notFound.Path == root {
		return nil
	}
	if err != nil {
		return fmt.Errorf("walking %s: %w", root, err)
	}
	return nil
}

func (s *Store) walkBlobs(ctx context.Context) ([]prune.Blob, error) {
	var blobs []prune.Blob
	err := s.walk(ctx, BlobsPath, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		e, err := ParsePath(fi.Path())
		if err != nil || e.Kind != KindBlobData {
			s.log().WithField("path", fi.Path()).Warn("skipping a file that is not a blob")
			return nil
		}
		blobs = append(blobs, prune.Blob{Digest: e.Digest, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Digest < blobs[j].Digest })
	return blobs, nil
}

// repoBuilder gathers the entries of one repository as the walk finds them.
type repoBuilder struct {
	repo    prune.Repository
	tags    map[string]*prune.Tag
	uploads map[string]*prune.Upload
}

func (s *Store) walkRepositories(ctx context.Context) ([]prune.Repository, error) {
	builders := make(map[string]*repoBuilder)
	get := func(name string) *repoBuilder {
		b := builders[name]
		if b == nil {
			b = &repoBuilder{repo: prune.Repository{Name: name}, tags: map[string]*prune.Tag{}, uploads: map[string]*prune.Upload{}}
			builders[name] = b
		}
		return b
	}
	var currentLinks []tagLink
	err := s.walk(ctx, RepositoriesPath, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		e, err := ParsePath(fi.Path())
		if err != nil {
			s.log().WithField("path", fi.Path()).WithError(err).Warn("skipping a file the registry does not write")
			return nil
		}
		b := get(e.Repository)
		mt := fi.ModTime()
		switch e.Kind {
		case KindManifestRevisionLink:
			b.repo.Manifests = append(b.repo.Manifests, prune.Link{Digest: e.Digest, ModTime: mt})
		case KindLayerLink:
			b.repo.Layers = append(b.repo.Layers, prune.Link{Digest: e.Digest, ModTime: mt})
		case KindTagCurrentLink:
			t := b.tag(e.Tag, mt)
			currentLinks = append(currentLinks, tagLink{tag: t, path: fi.Path()})
		case KindTagIndexLink:
			t := b.tag(e.Tag, mt)
			t.Index = append(t.Index, e.Digest)
		case KindUploadFile:
			u := b.uploads[e.UploadID]
			if u == nil {
				u = &prune.Upload{ID: e.UploadID}
				b.uploads[e.UploadID] = u
			}
			u.Size += fi.Size()
			if mt.After(u.ModTime) {
				u.ModTime = mt
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.readCurrentLinks(ctx, currentLinks); err != nil {
		return nil, err
	}

	repos := make([]prune.Repository, 0, len(builders))
	for _, b := range builders {
		for _, t := range b.tags {
			b.repo.Tags = append(b.repo.Tags, *t)
		}
		for _, u := range b.uploads {
			b.repo.Uploads = append(b.repo.Uploads, *u)
		}
		sort.Slice(b.repo.Tags, func(i, j int) bool { return b.repo.Tags[i].Name < b.repo.Tags[j].Name })
		sort.Slice(b.repo.Uploads, func(i, j int) bool { return b.repo.Uploads[i].ID < b.repo.Uploads[j].ID })
		repos = append(repos, b.repo)
	}
	sort.Slice(repos, func(i, j int) bool { return repos[i].Name < repos[j].Name })
	markNested(repos)
	return repos, nil
}

func (b *repoBuilder) tag(name string, mt time.Time) *prune.Tag {
	t := b.tags[name]
	if t == nil {
		t = &prune.Tag{Name: name}
		b.tags[name] = t
	}
	if mt.After(t.ModTime) {
		t.ModTime = mt
	}
	return t
}

type tagLink struct {
	tag  *prune.Tag
	path string
}

// readCurrentLinks reads what each tag points at: the only file contents the inventory needs,
// one small read per tag. A link with garbage content leaves the tag's Current empty, which
// keeps the tag untouched.
func (s *Store) readCurrentLinks(ctx context.Context, links []tagLink) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.workers())
	var mu sync.Mutex
	for _, l := range links {
		g.Go(func() error {
			content, err := s.Driver.GetContent(ctx, l.path)
			if err != nil {
				return fmt.Errorf("reading tag link %s: %w", l.path, err)
			}
			dgst, err := ParseLink(content)
			if err != nil {
				s.log().WithField("path", l.path).WithError(err).Warn("leaving a tag with an unreadable current link alone")
				return nil
			}
			mu.Lock()
			l.tag.Current = dgst
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// markNested flags repositories that have other repositories below them. repos is sorted by
// name, so a repository's nested ones follow it directly ("a/b" < "a/b/c" < "a/b0").
func markNested(repos []prune.Repository) {
	for i := range repos {
		prefix := repos[i].Name + "/"
		for j := i + 1; j < len(repos) && repos[j].Name <= prefix+"\xff"; j++ {
			if strings.HasPrefix(repos[j].Name, prefix) {
				repos[i].HasNested = true
				break
			}
		}
	}
}
