package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go/aws"
	awss3 "github.com/aws/aws-sdk-go/service/s3"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	s3driver "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	"k8s.io/client-go/util/retry"

	"github.com/hardprune/image-registry/prune"
)

// keyDeleter removes exact keys in batches: an object store's multi-object delete. A driver's
// own Delete removes a prefix, which on S3 costs a listing and a deletion per object; a batch
// of exact keys costs one request per prune.BatchSize objects.
type keyDeleter interface {
	// deleteKeys removes the objects at paths (driver paths, at most prune.BatchSize) in one
	// request. refused says which paths the store would not delete, and why; err, that the
	// request as a whole failed. A path already gone counts as deleted.
	deleteKeys(ctx context.Context, paths []string) (refused map[string]error, err error)
}

// Remover is the store as the sweep's remover. Over a driver whose store deletes many keys in
// one request (a keyDeleter in its DriverTraits), it is a prune.BatchRemover.
func (s *Store) Remover() prune.Remover {
	open := traitsOf(s.Driver.Name()).keyDeleter
	if open == nil {
		return s
	}
	keys, err := open(s.Driver)
	if err != nil {
		s.log().WithError(err).Warn("deleting object by object, a listing and a deletion each")
		return s
	}
	return &batchingStore{Store: s, keys: keys}
}

// batchingStore deletes the objects that are one key each (links, index entries, blobs), and
// the repositories the inventory knows key by key, in batches of exact keys; the others (tags,
// uploads, other repositories: prefixes) as Store does.
type batchingStore struct {
	*Store
	keys keyDeleter
}

var _ prune.BatchRemover = (*batchingStore)(nil)

// keyPath is the one path an object consists of, for the kinds stored as one key.
func keyPath(o prune.Object) (string, bool) {
	switch o.Kind {
	case prune.KindManifestLink:
		return ManifestRevisionLinkPath(o.Repository, o.Digest), true
	case prune.KindLayerLink:
		return LayerLinkPath(o.Repository, o.Digest), true
	case prune.KindTagIndexEntry:
		return TagIndexEntryLinkPath(o.Repository, o.Name, o.Digest), true
	case prune.KindBlob:
		return BlobDataPath(o.Digest), true
	}
	return "", false
}

func (b *batchingStore) DeleteBatch(ctx context.Context, objs []prune.Object) []error {
	errs := make([]error, len(objs))
	var (
		paths  []string
		of     = map[string]int{} // path -> index into objs
		wg     sync.WaitGroup
		slots  = make(chan struct{}, b.workers())
		prefix []int
	)
	// A tag's current link goes before the rest of it (see Store.Delete): current links first,
	// in requests of their own, then the index entries of the tags whose current link went.
	tagIndex := map[int][]string{}
	for i, o := range objs {
		if current, index, ok := b.tagPaths(o); ok {
			paths = append(paths, current)
			of[current] = i
			tagIndex[i] = index
		}
	}
	for p, err := range b.removeKeys(ctx, paths) {
		errs[of[p]] = err
	}
	paths = paths[:0]
	for i, index := range tagIndex {
		if errs[i] != nil {
			continue
		}
		for _, p := range index {
			paths = append(paths, p)
			of[p] = i
		}
	}
	for i, o := range objs {
		if _, ok := tagIndex[i]; ok {
			continue
		}
		if p, ok := keyPath(o); ok {
			paths = append(paths, p)
			of[p] = i
		} else if ps, ok := b.repositoryPaths(o); ok {
			for _, p := range ps {
				paths = append(paths, p)
				of[p] = i
			}
		} else {
			prefix = append(prefix, i)
		}
	}
	for _, i := range prefix {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			errs[i] = b.Delete(ctx, objs[i])
		}()
	}
	for p, err := range b.removeKeys(ctx, paths) {
		if i := of[p]; errs[i] == nil {
			errs[i] = err
		}
	}
	wg.Wait()
	return errs
}

// walkedRepository is the inventory's record of repository name, when the walk knows it key by
// key: every key below it parsed, no unfinished upload (whose files the inventory sums up).
func (b *batchingStore) walkedRepository(name string) (*prune.Repository, bool) {
	w := b.walked.Load()
	if w == nil || w.inexact[name] {
		return nil, false
	}
	i, found := slices.BinarySearchFunc(w.repos, name, func(r prune.Repository, name string) int {
		return cmp.Compare(r.Name, name)
	})
	if !found || len(w.repos[i].Uploads) > 0 {
		return nil, false
	}
	return &w.repos[i], true
}

// tagPaths are the keys of a tag that goes, as the inventory walked them: its current link,
// and its index entries.
func (b *batchingStore) tagPaths(o prune.Object) (current string, index []string, ok bool) {
	if o.Kind != prune.KindTag {
		return "", nil, false
	}
	r, ok := b.walkedRepository(o.Repository)
	if !ok {
		return "", nil, false
	}
	i, found := slices.BinarySearchFunc(r.Tags, o.Name, func(t prune.Tag, name string) int {
		return cmp.Compare(t.Name, name)
	})
	if !found {
		return "", nil, false
	}
	for _, d := range r.Tags[i].Index {
		index = append(index, TagIndexEntryLinkPath(r.Name, o.Name, d))
	}
	// A current link not listed is deleted all the same: deleting a key that is not there
	// costs nothing more.
	return TagCurrentLinkPath(r.Name, o.Name), index, true
}

// repositoryPaths are the keys of a repository that goes whole, as the inventory walked them:
// its links and its tags' links (see walkedRepository); a repository with nested ones loses
// its own keys only, as deleteRepository does. A key written after the
// walk would stay, where a prefix deletion would take it: on a registry kept read-only for the
// run there is none.
func (b *batchingStore) repositoryPaths(o prune.Object) ([]string, bool) {
	if o.Kind != prune.KindRepository {
		return nil, false
	}
	r, ok := b.walkedRepository(o.Repository)
	if !ok {
		return nil, false
	}
	var paths []string
	for _, l := range r.Manifests {
		paths = append(paths, ManifestRevisionLinkPath(r.Name, l.Digest))
	}
	for _, l := range r.Layers {
		paths = append(paths, LayerLinkPath(r.Name, l.Digest))
	}
	for _, t := range r.Tags {
		if t.State != prune.TagUnlisted {
			paths = append(paths, TagCurrentLinkPath(r.Name, t.Name))
		}
		for _, d := range t.Index {
			paths = append(paths, TagIndexEntryLinkPath(r.Name, t.Name, d))
		}
	}
	return paths, len(paths) > 0
}

// removeKeys deletes paths in requests of up to prune.BatchSize keys, retrying a failed request
// and the keys a request refused a few times, as remove does for one path. It returns the
// paths that could not be deleted, with their errors.
func (b *batchingStore) removeKeys(ctx context.Context, paths []string) map[string]error {
	failed := map[string]error{}
	for len(paths) > 0 {
		n := min(len(paths), prune.BatchSize)
		chunk := paths[:n]
		paths = paths[n:]
		err := retry.OnError(deleteBackoff, func(error) bool { return ctx.Err() == nil }, func() error {
			refused, err := b.keys.deleteKeys(ctx, chunk)
			if err != nil {
				return err
			}
			for _, p := range chunk {
				delete(failed, p) // refused by an earlier try, deleted by this one
			}
			chunk = chunk[:0:0]
			var errs []error
			for p, err := range refused {
				chunk = append(chunk, p)
				failed[p] = err
				errs = append(errs, err)
			}
			return errors.Join(errs...) // the refused keys, tried again
		})
		if err == nil {
			continue
		}
		for _, p := range chunk {
			if failed[p] == nil {
				failed[p] = err
			}
		}
	}
	return failed
}

// s3KeyDeleter deletes keys with DeleteObjects, on the client, bucket and key mapping of the
// configured s3aws driver itself, so that no second configuration can point elsewhere.
type s3KeyDeleter struct {
	client *awss3.S3
	bucket string
	key    func(path string) string
}

// openS3KeyDeleter reaches the client inside distribution's s3aws driver. The driver keeps it
// in an unexported struct's exported field; should a release of distribution move it, the
// prune deletes object by object rather than not at all.
func openS3KeyDeleter(d driver.StorageDriver) (keyDeleter, error) {
	s3d, ok := d.(*s3driver.Driver)
	if !ok {
		return nil, fmt.Errorf("the s3aws driver is a %T, not distribution's", d)
	}
	inner := reflect.ValueOf(s3d.StorageDriver)
	if inner.Kind() != reflect.Pointer || inner.IsNil() || inner.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("the s3aws driver holds a %T, not the struct it used to", s3d.StorageDriver)
	}
	field := func(name string) any {
		if f := inner.Elem().FieldByName(name); f.IsValid() && f.CanInterface() {
			return f.Interface()
		}
		return nil
	}
	client, _ := field("S3").(*awss3.S3)
	bucket, _ := field("Bucket").(string)
	if client == nil || bucket == "" {
		return nil, errors.New("the s3aws driver no longer shows its S3 client and bucket")
	}
	return &s3KeyDeleter{client: client, bucket: bucket, key: s3d.S3BucketKey}, nil
}

func (d *s3KeyDeleter) deleteKeys(ctx context.Context, paths []string) (map[string]error, error) {
	ids := make([]*awss3.ObjectIdentifier, len(paths))
	pathOf := make(map[string]string, len(paths))
	for i, p := range paths {
		k := d.key(p)
		ids[i] = &awss3.ObjectIdentifier{Key: aws.String(k)}
		pathOf[k] = p
	}
	out, err := d.client.DeleteObjectsWithContext(ctx, &awss3.DeleteObjectsInput{
		Bucket: aws.String(d.bucket),
		Delete: &awss3.Delete{Objects: ids, Quiet: aws.Bool(true)}, // an answer names errors only
	})
	if err != nil {
		return nil, fmt.Errorf("deleting %d keys from bucket %s: %w", len(paths), d.bucket, err)
	}
	refused := map[string]error{}
	for _, e := range out.Errors {
		p, ok := pathOf[aws.StringValue(e.Key)]
		if !ok {
			// An error the request cannot be read for: none of its keys counts as deleted.
			return nil, fmt.Errorf("deleting %d keys from bucket %s: an error for a key not asked for: %s",
				len(paths), d.bucket, e)
		}
		if aws.StringValue(e.Code) == "NoSuchKey" {
			continue // already gone
		}
		refused[p] = fmt.Errorf("key %s: %s: %s", aws.StringValue(e.Key), aws.StringValue(e.Code),
			aws.StringValue(e.Message))
	}
	return refused, nil
}
