package storage

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// ObjectStoreListing gives a driver that runs here an object store's listing, as the s3aws
// driver makes it: Walk lists every key below a prefix in byte order, PageKeys a request,
// starting after WithStartAfterHint's key, inferring directories from the keys, and asking for
// no more pages once the walk function returns ErrFilledBuffer. It calls itself s3aws, to take
// that driver's code paths, and counts its listing requests.
type ObjectStoreListing struct {
	driver.StorageDriver
	// PageKeys is the keys a listing request returns; 0 is S3's 1000.
	PageKeys int
	// FailAfter, if set, makes the walks starting after a key beginning with it fail.
	FailAfter string

	requests atomic.Int64
	mu       sync.Mutex
	hints    []string
}

// Hints are the keys the walks started after, in no order.
func (d *ObjectStoreListing) Hints() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.hints)
}

// ErrListingFailed is what the walks that FailAfter names return.
var ErrListingFailed = errors.New("listing failed")

func (d *ObjectStoreListing) Name() string { return "s3aws" }

// Requests is how many listing requests Walk and List made.
func (d *ObjectStoreListing) Requests() int { return int(d.requests.Load()) }

func (d *ObjectStoreListing) pageKeys() int {
	if d.PageKeys < 1 {
		return listPageKeys
	}
	return d.PageKeys
}

func (d *ObjectStoreListing) Walk(
	ctx context.Context,
	from string,
	f driver.WalkFn,
	options ...func(*driver.WalkOptions),
) error {
	var opts driver.WalkOptions
	for _, o := range options {
		o(&opts)
	}
	d.mu.Lock()
	d.hints = append(d.hints, opts.StartAfterHint)
	d.mu.Unlock()
	if d.FailAfter != "" && strings.HasPrefix(opts.StartAfterHint, d.FailAfter) {
		d.requests.Add(1)
		return ErrListingFailed
	}
	var keys []driver.FileInfo
	err := d.StorageDriver.Walk(ctx, from, func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			keys = append(keys, fi)
		}
		return nil
	})
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return err
	}
	slices.SortFunc(keys, func(a, b driver.FileInfo) int { return strings.Compare(a.Path(), b.Path()) })
	i, _ := slices.BinarySearchFunc(keys, opts.StartAfterHint, func(fi driver.FileInfo, after string) int {
		if fi.Path() <= after {
			return -1
		}
		return 1
	})
	keys = keys[i:]
	prevDir := from
	for {
		d.requests.Add(1)
		page := keys[:min(len(keys), d.pageKeys())]
		keys = keys[len(page):]
		for _, fi := range page {
			for _, dir := range inferredDirs(prevDir, fi.Path()) {
				prevDir = dir
				if err := f(driver.FileInfoInternal{FileInfoFields: driver.FileInfoFields{Path: dir, IsDir: true}}); err != nil {
					return walkResult(err)
				}
			}
			if err := f(fi); err != nil {
				return walkResult(err)
			}
		}
		if len(keys) == 0 {
			return nil
		}
	}
}

// walkResult is what the s3aws driver's Walk returns for a walk function's error.
func walkResult(err error) error {
	if errors.Is(err, driver.ErrFilledBuffer) {
		return nil
	}
	if errors.Is(err, driver.ErrSkipDir) {
		return errors.New("ObjectStoreListing does not skip directories")
	}
	return err
}

// inferredDirs are the directories of current that prev is not in, outermost first, as the
// s3aws driver infers them.
func inferredDirs(prev, current string) []string {
	var dirs []string
	for parent := path.Dir(current); parent != "/" && parent != prev && !strings.HasPrefix(prev+"/", parent+"/"); parent = path.Dir(parent) {
		dirs = append(dirs, parent)
	}
	slices.Reverse(dirs)
	return dirs
}

func (d *ObjectStoreListing) List(ctx context.Context, p string) ([]string, error) {
	children, err := d.StorageDriver.List(ctx, p)
	d.requests.Add(int64(max(1, (len(children)+d.pageKeys()-1)/d.pageKeys())))
	return children, err
}
