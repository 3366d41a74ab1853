package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/hardprune/image-registry/internal/progress"
	"github.com/hardprune/image-registry/prune"
)

// Store reads and deletes the registry's objects through a distribution storage driver.
type Store struct {
	Driver driver.StorageDriver
	// Workers bounds the walks and deletions under way at once.
	Workers int
	Log     logrus.FieldLogger
	// Root is where the driver keeps RootPath (its rootdirectory setting), for messages only;
	// empty when unknown.
	Root string

	// walked is what the last one-listing inventory saw of the repositories, for deleting a
	// repository key by key (see batchingStore).
	walked atomic.Pointer[walkedRepositories]
	// rangePageKeys, when set, stands for the keys of a listing page in rangedInventory, so
	// that tests split small stores.
	rangePageKeys int
}

// walkedRepositories is an inventory's repositories, and the names of those holding files the
// inventory skipped: only the others are known key by key.
type walkedRepositories struct {
	repos   []prune.Repository // sorted by name
	inexact map[string]bool
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
// fails the inventory, since a partial one could make a referenced blob look unlinked. A
// directory that goes while it is walked is the one exception (see walkDriver): what the
// registry removed no longer links anything.
func (s *Store) Inventory(ctx context.Context) (*prune.Inventory, error) {
	phase := progress.Start(s.log(), "inventory")
	defer phase.Done()
	w := &walker{Store: s, phase: phase, digests: &interner{}}
	if traits := traitsOf(s.Driver.Name()); traits.FlatListing {
		if traits.KeyRanges && s.workers() > 1 {
			return w.rangedInventory(ctx)
		}
		return w.flatInventory(ctx)
	}
	g, ctx := errgroup.WithContext(ctx)
	var blobs []prune.Blob
	var repos []prune.Repository
	g.Go(func() error {
		var err error
		blobs, err = w.walkBlobs(ctx)
		return err
	})
	var missing bool
	g.Go(func() error {
		var err error
		repos, missing, err = w.walkRepositories(ctx)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return s.finish(&prune.Inventory{Blobs: blobs, Repositories: repos, RepositoriesMissing: missing}), nil
}

// finish says what the inventory alone can tell is odd about storage.
func (s *Store) finish(inv *prune.Inventory) *prune.Inventory {
	if inv.RepositoriesMissing {
		root := RootPath
		if s.Root != "" {
			root = path.Join(s.Root, RootPath)
		}
		s.log().
			WithField("blobs", len(inv.Blobs)).
			Warnf("storage has no repositories/ directory below %s: is rootdirectory right?", root)
	}
	return inv
}

// walker is one inventory under way.
type walker struct {
	*Store
	phase   *progress.Phase
	digests *interner
}

// flatInventory lists the whole storage root in one paged listing: on object storage that is
// ceil(objects/1000) requests, the least there can be.
func (s *walker) flatInventory(ctx context.Context) (*prune.Inventory, error) {
	l := newFlatListing()
	err := s.walk(ctx, RootPath, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			l.dir(fi.Path())
			return nil
		}
		s.visitFlat(l, fi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.finishFlat([]*flatListing{l})
}

// flatListing is what one listing of keys (the whole root, or a range of it) found.
type flatListing struct {
	blobs []prune.Blob
	repos *repoShard
	// reposSeen: a key at or below RepositoriesPath was listed.
	reposSeen bool
}

func newFlatListing() *flatListing { return &flatListing{repos: newRepoShard()} }

// dir notes a directory the listing inferred from a key below it.
func (l *flatListing) dir(p string) {
	if p == RepositoriesPath || strings.HasPrefix(p, RepositoriesPath+"/") {
		l.reposSeen = true
	}
}

// visitFlat records a listed file.
func (s *walker) visitFlat(l *flatListing, fi driver.FileInfo) {
	p := fi.Path()
	l.dir(p)
	s.phase.Seen(1)
	switch {
	case strings.HasPrefix(p, BlobsPath+"/"):
		s.visitBlob(&l.blobs, fi)
	case strings.HasPrefix(p, RepositoriesPath+"/"):
		s.visitRepositoryFile(l.repos, fi)
	}
	// Anything else under the root (the prune marker and lock) is not the inventory's.
}

// finishFlat makes one inventory of listings that together listed every key once. Each
// repository must lie in one listing: its entries are gathered per listing.
func (s *walker) finishFlat(ls []*flatListing) (*prune.Inventory, error) {
	blobs := make([]*[]prune.Blob, len(ls))
	repos := make([]*repoShard, len(ls))
	inexact := map[string]bool{}
	reposSeen := false
	for i, l := range ls {
		blobs[i], repos[i] = &l.blobs, l.repos
		for name := range l.repos.odd {
			inexact[name] = true
		}
		reposSeen = reposSeen || l.reposSeen
	}
	inv := &prune.Inventory{
		Blobs:               finishBlobs(blobs),
		Repositories:        finishRepositories(repos),
		RepositoriesMissing: !reposSeen,
	}
	for i := 1; i < len(inv.Repositories); i++ {
		if name := inv.Repositories[i].Name; name == inv.Repositories[i-1].Name {
			// Two listings each saw part of it: its links would be judged on half of them.
			return nil, fmt.Errorf("inventory: repository %s was listed in two key ranges", name)
		}
	}
	s.walked.Store(&walkedRepositories{repos: inv.Repositories, inexact: inexact})
	return s.finish(inv), nil
}

// walkShards walks root, split into the directories depth levels below it, up to Workers at
// once. Each shard gets its own state from newShard and is walked by one goroutine, so visit
// needs no lock for it; files found above the shard level are visited with a nil state.
func walkShards[T any](
	ctx context.Context,
	s *Store,
	root string,
	depth int,
	phase *progress.Phase,
	newShard func() *T,
	visit func(shard *T, fi driver.FileInfo),
) error {
	walkOne := func(ctx context.Context, dir string, shard *T) error {
		return s.walk(ctx, dir, func(fi driver.FileInfo) error {
			if !fi.IsDir() {
				phase.Seen(1)
				visit(shard, fi)
			}
			return nil
		})
	}
	if s.workers() == 1 {
		return walkOne(ctx, root, newShard())
	}
	dirs, err := s.shardDirs(ctx, root, depth, func(fi driver.FileInfo) { visit(nil, fi) })
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.workers())
	for _, dir := range dirs {
		shard := newShard()
		g.Go(func() error { return walkOne(ctx, dir, shard) })
	}
	return g.Wait()
}

// shardDirs lists the directories depth levels below root; files met on the way go to file.
func (s *Store) shardDirs(ctx context.Context, root string, depth int, file func(driver.FileInfo)) ([]string, error) {
	d := s.walkDriver(root)
	level := []string{root}
	for range depth {
		var next []string
		for _, dir := range level {
			children, err := d.List(ctx, dir)
			if err != nil && vanished(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", dir, err)
			}
			for _, child := range children {
				fi, err := d.Stat(ctx, child)
				if err != nil && vanished(err) {
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("stat %s: %w", child, err)
				}
				if fi.IsDir() {
					next = append(next, child)
				} else {
					file(fi)
				}
			}
		}
		level = next
	}
	sort.Strings(level)
	return level, nil
}

// walk runs the driver's Walk, treating a missing root as empty storage.
func (s *Store) walk(ctx context.Context, root string, f driver.WalkFn) error {
	_, err := s.walkFound(ctx, root, f)
	return err
}

// walkFound is walk, telling besides whether root exists.
func (s *Store) walkFound(ctx context.Context, root string, f driver.WalkFn) (found bool, err error) {
	err = s.walkDriver(root).Walk(ctx, root, f)
	var notFound driver.PathNotFoundError
	if errors.As(err, &notFound) && notFound.Path == root {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("walking %s: %w", root, err)
	}
	return true, nil
}

func (s *walker) walkBlobs(ctx context.Context) ([]prune.Blob, error) {
	var (
		mu     sync.Mutex
		shards []*[]prune.Blob
	)
	newShard := func() *[]prune.Blob {
		sh := new([]prune.Blob)
		mu.Lock()
		shards = append(shards, sh)
		mu.Unlock()
		return sh
	}
	// <blobs>/<algorithm>/<two hex digits>: 256 shards for sha256.
	err := walkShards(ctx, s.Store, BlobsPath, 2, s.phase, newShard, func(shard *[]prune.Blob, fi driver.FileInfo) {
		if shard == nil {
			s.log().WithField("path", fi.Path()).Warn("skipping a file that is not a blob")
			return
		}
		s.visitBlob(shard, fi)
	})
	if err != nil {
		return nil, err
	}
	return finishBlobs(shards), nil
}

// visitBlob records a walked file under the blobs root.
func (s *walker) visitBlob(shard *[]prune.Blob, fi driver.FileInfo) {
	e, err := ParsePath(fi.Path())
	if err != nil || e.Kind != KindBlobData {
		s.log().WithField("path", fi.Path()).Warn("skipping a file that is not a blob")
		return
	}
	*shard = append(*shard, prune.Blob{Digest: s.digests.intern(e.Digest), Size: fi.Size(), ModTime: fi.ModTime()})
}

// finishBlobs merges the shards into one list sorted by digest.
func finishBlobs(shards []*[]prune.Blob) []prune.Blob {
	n := 0
	for _, sh := range shards {
		n += len(*sh)
	}
	blobs := make([]prune.Blob, 0, n)
	for _, sh := range shards {
		blobs = append(blobs, *sh...)
	}
	slices.SortFunc(blobs, func(a, b prune.Blob) int { return cmp.Compare(a.Digest, b.Digest) })
	return blobs
}

// repoBuilder gathers the entries of one repository as the walk finds them.
type repoBuilder struct {
	repo    prune.Repository
	tags    map[string]*prune.Tag
	uploads map[string]*prune.Upload
}

// repoShard is what one shard of the repositories walk found. A repository lives in exactly
// one shard (its first name component), so shards never need merging repository by repository.
type repoShard struct {
	builders map[string]*repoBuilder
	// warned holds the names of unaddressable repositories already logged.
	warned map[string]bool
	// odd holds the names of repositories with files the walk skipped.
	odd map[string]bool
}

func (sh *repoShard) get(name string) *repoBuilder {
	b := sh.builders[name]
	if b == nil {
		b = &repoBuilder{
			repo:    prune.Repository{Name: name},
			tags:    map[string]*prune.Tag{},
			uploads: map[string]*prune.Upload{},
		}
		sh.builders[name] = b
	}
	return b
}

// markOdd records that the repository holding p has a file the walk skipped; for a file outside
// any data directory, every repository whose directory holds it.
func (sh *repoShard) markOdd(p string) {
	if name := RepositoryNameOf(p); name != "" {
		sh.odd[name] = true
		return
	}
	rel := strings.TrimPrefix(p, RepositoriesPath+"/")
	for i, c := range rel {
		if c == '/' {
			sh.odd[rel[:i]] = true
		}
	}
}

func newRepoShard() *repoShard {
	return &repoShard{builders: map[string]*repoBuilder{}, warned: map[string]bool{}, odd: map[string]bool{}}
}

// walkRepositories walks the repositories; missing says there is no repositories directory.
func (s *walker) walkRepositories(ctx context.Context) (repos []prune.Repository, missing bool, err error) {
	if _, err := s.Driver.Stat(ctx, RepositoriesPath); err != nil {
		var notFound driver.PathNotFoundError
		if errors.As(err, &notFound) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("stat %s: %w", RepositoriesPath, err)
	}
	var (
		mu     sync.Mutex
		shards []*repoShard
	)
	newShard := func() *repoShard {
		sh := newRepoShard()
		mu.Lock()
		shards = append(shards, sh)
		mu.Unlock()
		return sh
	}
	// <repositories>/<first name component>: one shard per namespace.
	err = walkShards(ctx, s.Store, RepositoriesPath, 1, s.phase, newShard, func(shard *repoShard, fi driver.FileInfo) {
		if shard == nil {
			s.log().WithField("path", fi.Path()).Warn("skipping a file the registry does not write")
			return
		}
		s.visitRepositoryFile(shard, fi)
	})
	if err != nil {
		return nil, false, err
	}
	return finishRepositories(shards), false, nil
}

// visitRepositoryFile records a walked file under the repositories root.
func (s *walker) visitRepositoryFile(shard *repoShard, fi driver.FileInfo) {
	e, err := ParsePath(fi.Path())
	badName := errors.Is(err, ErrBadRepositoryName)
	switch {
	case badName && e.Kind == 0:
		// A name no storage driver can address: no deletion could reach it. Said once per
		// name, not once per file.
		name := RepositoryNameOf(fi.Path())
		if !shard.warned[name] {
			shard.warned[name] = true
			s.log().
				WithField("repository", name).
				WithError(err).
				Warn("skipping a repository whose name the storage driver cannot address; remove it by hand")
		}
		return
	case err != nil && !badName:
		s.log().WithField("path", fi.Path()).WithError(err).Warn("skipping a file the registry does not write")
		shard.markOdd(fi.Path())
		return
	}
	if e.Digest != "" {
		e.Digest = s.digests.intern(e.Digest)
	}
	b := shard.add(e, fi)
	if badName && !b.repo.InvalidName {
		// Once per repository: no image stream can have its name, so it is pruned like any
		// repository without one.
		b.repo.InvalidName = true
		s.log().
			WithField("repository", e.Repository).
			Warn("repository with an invalid name: no image stream can hold it, so it goes like a repository without an image stream once nothing in it is younger than the grace period")
	}
}

// finishRepositories builds the repositories of every shard, sorted by name.
func finishRepositories(shards []*repoShard) []prune.Repository {
	var repos []prune.Repository
	for _, sh := range shards {
		for _, b := range sh.builders {
			repos = append(repos, b.build())
		}
	}
	slices.SortFunc(repos, func(a, b prune.Repository) int { return cmp.Compare(a.Name, b.Name) })
	markNested(repos)
	return repos
}

// add records one walked file of the shard, and returns its repository's builder.
func (sh *repoShard) add(e Entry, fi driver.FileInfo) *repoBuilder {
	b := sh.get(e.Repository)
	mt := fi.ModTime()
	switch e.Kind {
	case KindManifestRevisionLink:
		b.repo.Manifests = append(b.repo.Manifests, prune.Link{Digest: e.Digest, ModTime: mt})
	case KindLayerLink:
		b.repo.Layers = append(b.repo.Layers, prune.Link{Digest: e.Digest, ModTime: mt})
	case KindTagCurrentLink:
		// Only its time: what it points at is read later, for the few tags that need it.
		b.tag(e.Tag, mt).CurrentModTime = mt
	case KindTagIndexLink:
		t := b.tag(e.Tag, mt)
		t.Index = append(t.Index, e.Digest)
		t.IndexModTimes = append(t.IndexModTimes, mt)
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
	return b
}

// build finishes a repository once the walk is over (and its tags' current links are read).
func (b *repoBuilder) build() prune.Repository {
	for _, t := range b.tags {
		if t.CurrentModTime.IsZero() {
			// No current link listed (or one without a time): a read settles it.
			t.State = prune.TagUnlisted
		}
		b.repo.Tags = append(b.repo.Tags, *t)
	}
	for _, u := range b.uploads {
		b.repo.Uploads = append(b.repo.Uploads, *u)
	}
	slices.SortFunc(b.repo.Tags, func(x, y prune.Tag) int { return cmp.Compare(x.Name, y.Name) })
	slices.SortFunc(b.repo.Uploads, func(x, y prune.Upload) int { return cmp.Compare(x.ID, y.ID) })
	// Exact-size copies: appending left up to half of each slice unused, and an inventory
	// holds hundreds of thousands of links for the whole run.
	b.repo.Manifests = slices.Clone(b.repo.Manifests)
	b.repo.Layers = slices.Clone(b.repo.Layers)
	sortLinks(b.repo.Manifests)
	sortLinks(b.repo.Layers)
	return b.repo
}

func sortLinks(ls []prune.Link) {
	slices.SortFunc(ls, func(a, b prune.Link) int { return cmp.Compare(a.Digest, b.Digest) })
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

var _ prune.TagResolver = (*Store)(nil)

// ResolveTags reads the current links of the tags named, one small read each, in parallel. A
// link with garbage content leaves the tag's Current empty, which keeps the tag untouched; a
// missing link marks the tag TagNoCurrentLink, which removes it; any other storage error
// fails.
func (s *Store) ResolveTags(ctx context.Context, inv *prune.Inventory, refs []prune.TagRef) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.workers())
	for _, ref := range refs {
		t := inv.Tag(ref)
		if t == nil {
			continue
		}
		// Each goroutine writes its own tag.
		g.Go(func() error {
			p := TagCurrentLinkPath(ref.Repository, ref.Tag)
			content, err := s.Driver.GetContent(ctx, p)
			var notFound driver.PathNotFoundError
			switch {
			case errors.As(err, &notFound):
				t.Current, t.State = "", prune.TagNoCurrentLink
				return nil
			case err != nil:
				return fmt.Errorf("reading tag link %s: %w", p, err)
			}
			dgst, err := ParseLink(content)
			if err != nil {
				s.log().WithField("path", p).WithError(err).Warn("leaving a tag with an unreadable current link alone")
			}
			t.Current, t.State = dgst, prune.TagRead
			return nil
		})
	}
	return g.Wait()
}

// markNested flags repositories that have other repositories below them. repos is sorted by
// name, so a repository's nested ones follow it within the names that share its prefix.
func markNested(repos []prune.Repository) {
	for i := range repos {
		prefix := repos[i].Name + "/"
		for j := i + 1; j < len(repos) && repos[j].Name <= prefix+"\xff"; j++ {
			if strings.HasPrefix(repos[j].Name, prefix) {
				repos[i].Nested = true
				break
			}
		}
	}
}
