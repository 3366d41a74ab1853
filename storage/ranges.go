package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/hardprune/image-registry/prune"
)

// A flat listing pays one round trip per page in turn: at a cloud region's latency, 600 pages
// cost seconds of waiting alone. rangedInventory lists the same keys as flatInventory in
// contiguous key ranges, several at once, and puts together the same inventory.
//
// Ranges are split off only once a listing has seen a page of a region's keys (the blobs, the
// repositories): that page tells how dense the keys are, so a small store stays about one
// flat listing and a large one gets up to maxRangesPerRegion ranges a region. Each range costs
// at most one page more than its share of the flat listing (its last page runs past its end),
// so splitting only what holds rangeMinPages pages or more keeps the listing within about
// 1 + 1/rangeMinPages of the flat listing's requests, plus the one listing of the namespaces
// (see repositoryBounds).
const (
	// listPageKeys is how many keys the s3aws driver asks for per listing request.
	listPageKeys = 1000
	// rangeMinPages is the fewest pages a range split off is expected to hold.
	rangeMinPages = 8
	// maxRangesPerRegion caps the ranges of each region, and with them the extra pages.
	maxRangesPerRegion = 16
)

// keyRange is the keys k with after < k <= upTo in byte order, which is the order object
// stores list keys in; "" leaves a side open.
type keyRange struct {
	after, upTo string
}

func (r keyRange) String() string {
	after, upTo := r.after, r.upTo
	if after == "" {
		after = "the first key"
	}
	if upTo == "" {
		upTo = "the last key"
	}
	return fmt.Sprintf("keys after %s up to %s", after, upTo)
}

func (r keyRange) holds(p string) bool {
	return (r.after == "" || p > r.after) && (r.upTo == "" || p <= r.upTo)
}

// region is a part of the key space whose keys spread about evenly over its bounds, so that
// the keys of a range's first page there tell how many the rest holds.
type region struct {
	keyRange
	// bounds returns the region's candidate range bounds, sorted: paths such that the keys
	// below one of them sort together, between it and the next. They never fall inside a
	// repository, whose entries must be listed by one range (see finishFlat).
	bounds func(ctx context.Context) ([]string, error)
}

// regions are the blobs (and the prune's own files after them) and the repositories.
func (s *walker) regions() []region {
	return []region{
		{keyRange{upTo: RepositoriesPath}, blobBounds},
		{keyRange{after: RepositoriesPath}, s.repositoryBounds},
	}
}

// rangedInventory lists the root as one range, which splits, up to Workers listings at a
// time: once it has listed a page of a region's keys, the rest of the region becomes as many
// ranges as that page shows it to be large, and the regions after it one more range, which
// splits in turn. Any listing error fails the whole inventory: a range left out would make
// what it holds look gone.
func (s *walker) rangedInventory(ctx context.Context) (*prune.Inventory, error) {
	pageKeys := s.rangePageKeys
	if pageKeys < 1 {
		pageKeys = listPageKeys
	}
	maxRanges := min(maxRangesPerRegion, 2*s.workers())
	slots := semaphore.NewWeighted(int64(s.workers()))
	g, ctx := errgroup.WithContext(ctx)
	var (
		mu       sync.Mutex
		listings []*flatListing
	)
	var list func(r keyRange, regions []region)
	list = func(r keyRange, regions []region) {
		l := newFlatListing()
		mu.Lock()
		listings = append(listings, l)
		mu.Unlock()
		g.Go(func() error {
			if err := slots.Acquire(ctx, 1); err != nil {
				return err
			}
			defer slots.Release(1)
			// split hands the rest of the range past cur, a page into region i, to other
			// ranges, and returns where this one now ends.
			split := func(i int, cur string, seen int, upTo string) (string, error) {
				rg := regions[i]
				bounds, err := rg.bounds(ctx)
				if err != nil {
					return "", err
				}
				end := upTo
				if rg.upTo != "" && (end == "" || rg.upTo < end) {
					end = rg.upTo
				}
				points := splitPoints(bounds, cur, end, seen, pageKeys*rangeMinPages, maxRanges)
				if len(points) == 0 {
					return upTo, nil
				}
				s.log().WithField("ranges", len(points)+1).WithField("after", cur).Debug("listing the rest of the region in ranges")
				for j, p := range points {
					next := end
					if j+1 < len(points) {
						next = points[j+1]
					}
					list(keyRange{after: p, upTo: next}, nil)
				}
				if end != upTo {
					list(keyRange{after: end, upTo: upTo}, regions[i+1:])
				}
				return points[0], nil
			}
			return s.listRange(ctx, r, l, regions, pageKeys, split)
		})
	}
	list(keyRange{}, s.regions())
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return s.finishFlat(listings)
}

// listRange lists the keys of r into l. Once it has listed pageKeys keys of one of regions,
// split may end it sooner, at the bound it returns, having handed the rest to other listings.
func (s *walker) listRange(
	ctx context.Context,
	r keyRange,
	l *flatListing,
	regions []region,
	pageKeys int,
	split func(region int, cur string, seen int, upTo string) (string, error),
) error {
	var opts []func(*driver.WalkOptions)
	if r.after != "" {
		opts = append(opts, driver.WithStartAfterHint(r.after))
	}
	var last string
	seen := make([]int, len(regions))
	err := s.Driver.Walk(ctx, RootPath, func(fi driver.FileInfo) error {
		p := fi.Path()
		if fi.IsDir() {
			// Inferred from a key below it, which exists whether or not it is in r.
			l.dir(p)
			return nil
		}
		switch {
		case r.after != "" && p <= r.after:
			// The hint is only a hint: a driver may list from the start.
			return nil
		case r.upTo != "" && p > r.upTo:
			// Every key from here on is another range's: the rest of this page is wasted, and
			// no more pages are asked for.
			return driver.ErrFilledBuffer
		case p < last:
			// Stopping at the first key past upTo is right only if the keys come in order.
			return fmt.Errorf("%s came after %s: the storage does not list keys in order", p, last)
		}
		last = p
		s.visitFlat(l, fi)
		for i, rg := range regions {
			if !rg.holds(p) {
				continue
			}
			if seen[i]++; seen[i] == pageKeys {
				upTo, err := split(i, p, seen[i], r.upTo)
				if err != nil {
					return err
				}
				r.upTo = upTo
			}
			break
		}
		return nil
	}, opts...)
	var notFound driver.PathNotFoundError
	if errors.As(err, &notFound) && notFound.Path == RootPath {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", r, err)
	}
	return nil
}

// splitPoints splits the rest of a range, the keys after cur up to upTo, into ranges expected
// to hold minKeys keys or more, at most maxRanges: it returns the bounds between them, taken
// from bounds (sorted). seen keys took the range past the bounds up to cur, so as many are
// expected between each of the following ones.
func splitPoints(bounds []string, cur, upTo string, seen, minKeys, maxRanges int) []string {
	passed := sort.Search(len(bounds), func(i int) bool { return bounds[i] > cur })
	end := len(bounds)
	if upTo != "" {
		end = sort.Search(len(bounds), func(i int) bool { return bounds[i] >= upTo })
	}
	if passed == 0 || end <= passed {
		return nil // nothing to estimate with, or nothing to split at
	}
	rest := bounds[passed:end]
	expected := seen * len(rest) / passed
	n := min(maxRanges, expected/minKeys, len(rest)+1)
	if n < 2 {
		return nil
	}
	points := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		points = append(points, rest[i*len(rest)/n])
	}
	return points
}

// blobBounds are the 256 prefix directories of sha256 blobs: the digests spread the blobs
// evenly over them, and knowing them costs no request.
func blobBounds(context.Context) ([]string, error) {
	bounds := make([]string, 0, 256)
	for i := range 256 {
		bounds = append(bounds, BlobPrefixPath(digest.SHA256, fmt.Sprintf("%02x", i)))
	}
	return bounds, nil
}

// repositoryBounds are the namespaces, the first components of the repositories' names: one
// listing of ⌈namespaces/1000⌉ requests. A bound without a slash after RepositoriesPath sorts
// before or after every key of a namespace, never among them, so no repository is split.
func (s *walker) repositoryBounds(ctx context.Context) ([]string, error) {
	children, err := s.Driver.List(ctx, RepositoriesPath)
	var notFound driver.PathNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", RepositoriesPath, err)
	}
	sort.Strings(children)
	return children, nil
}
