package prune

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/internal/progress"
	"golang.org/x/sync/errgroup"
)

// Remover deletes stored objects. The storage package implements it over a storage driver;
// DryRun implements it by logging what would go.
type Remover interface {
	DeleteRepository(ctx context.Context, a RepositoryAction) error
	DeleteTag(ctx context.Context, a TagAction) error
	DeleteTagIndexEntry(ctx context.Context, a TagIndexAction) error
	DeleteManifestLink(ctx context.Context, a LinkAction) error
	DeleteLayerLink(ctx context.Context, a LinkAction) error
	DeleteUpload(ctx context.Context, a UploadAction) error
	DeleteBlob(ctx context.Context, a BlobAction) error
}

// Summary counts what a sweep removed (or, in a dry run, would remove).
type Summary struct {
	Blobs           int
	BlobBytes       int64
	Repositories    int
	Tags            int
	TagIndexEntries int
	ManifestLinks   int
	LayerLinks      int
	Uploads         int
	UploadBytes     int64
}

// Sweep executes a plan: repositories and links first, blobs last, so that a run stopped at any
// point leaves every remaining link pointing at an existing blob. Within a phase up to workers
// deletions run at once. The first error stops the sweep after the deletions under way, and
// no later phase starts; the summary counts what was done.
//
// phase, if not nil, counts each deletion for the progress reports.
func Sweep(ctx context.Context, plan *Plan, remover Remover, workers int, phase *progress.Phase) (Summary, error) {
	if workers < 1 {
		workers = 1
	}
	var (
		mu  sync.Mutex
		sum Summary
	)
	count := func(f func(*Summary)) {
		mu.Lock()
		f(&sum)
		mu.Unlock()
		phase.Seen(1)
	}
	phases := []func(context.Context, *errgroup.Group){
		func(ctx context.Context, g *errgroup.Group) {
			each(ctx, g, plan.Repositories, remover.DeleteRepository,
				func(a RepositoryAction) string { return "repository " + a.Name },
				func(RepositoryAction) { count(func(s *Summary) { s.Repositories++ }) })
		},
		func(ctx context.Context, g *errgroup.Group) {
			each(ctx, g, plan.Tags, remover.DeleteTag,
				func(a TagAction) string { return fmt.Sprintf("tag %s:%s", a.Repository, a.Tag) },
				func(TagAction) { count(func(s *Summary) { s.Tags++ }) })
			each(ctx, g, plan.TagIndexEntries, remover.DeleteTagIndexEntry,
				func(a TagIndexAction) string {
					return fmt.Sprintf("index entry %s of tag %s:%s", a.Digest, a.Repository, a.Tag)
				},
				func(TagIndexAction) { count(func(s *Summary) { s.TagIndexEntries++ }) })
		},
		func(ctx context.Context, g *errgroup.Group) {
			each(ctx, g, plan.ManifestLinks, remover.DeleteManifestLink,
				func(a LinkAction) string { return fmt.Sprintf("manifest link %s@%s", a.Repository, a.Digest) },
				func(LinkAction) { count(func(s *Summary) { s.ManifestLinks++ }) })
			each(ctx, g, plan.LayerLinks, remover.DeleteLayerLink,
				func(a LinkAction) string { return fmt.Sprintf("layer link %s@%s", a.Repository, a.Digest) },
				func(LinkAction) { count(func(s *Summary) { s.LayerLinks++ }) })
			each(ctx, g, plan.Uploads, remover.DeleteUpload,
				func(a UploadAction) string { return fmt.Sprintf("upload %s/%s", a.Repository, a.ID) },
				func(a UploadAction) { count(func(s *Summary) { s.Uploads++; s.UploadBytes += a.Size }) })
		},
		// Blobs last: every link that pointed at them is gone by now.
		func(ctx context.Context, g *errgroup.Group) {
			each(ctx, g, plan.Blobs, remover.DeleteBlob,
				func(a BlobAction) string { return "blob " + a.Digest.String() },
				func(a BlobAction) {
					count(func(s *Summary) { s.Blobs++; s.BlobBytes += a.Size })
					phase.Candidate(a.Size)
				})
		},
	}
	for _, phase := range phases {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(workers)
		phase(gctx, g)
		err := g.Wait()
		// A cancelled run (SIGINT, SIGTERM) stops between deletions, not in the middle of one.
		if ctx.Err() != nil {
			// A deletion that failed for its own reason says so too: its error may name what
			// is left to clean up by hand.
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return sum, fmt.Errorf("stopped before the sweep finished: %w; %w", ctx.Err(), err)
			}
			return sum, fmt.Errorf("stopped before the sweep finished: %w", ctx.Err())
		}
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// each schedules the deletion of every item, unless the phase was cancelled (an earlier error,
// or the run's context). done is called after each deletion that succeeded.
func each[T any](ctx context.Context, g *errgroup.Group, items []T, del func(context.Context, T) error, what func(T) string, done func(T)) {
	for _, item := range items {
		if ctx.Err() != nil {
			return
		}
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := del(ctx, item); err != nil {
				return fmt.Errorf("deleting %s: %w", what(item), err)
			}
			done(item)
			return nil
		})
	}
}

// DryRun is the Remover of -prune=check: it logs each candidate and deletes nothing.
type DryRun struct {
	Log logrus.FieldLogger
}

var _ Remover = DryRun{}

func (d DryRun) DeleteRepository(_ context.Context, a RepositoryAction) error {
	d.Log.WithField("reason", a.Reason).Infof("Would delete repository: %s", a.Name)
	return nil
}

func (d DryRun) DeleteTag(_ context.Context, a TagAction) error {
	d.Log.WithField("reason", a.Reason).Infof("Would delete tag: %s:%s", a.Repository, a.Tag)
	return nil
}

func (d DryRun) DeleteTagIndexEntry(_ context.Context, a TagIndexAction) error {
	d.Log.Infof("Would delete tag index entry: %s:%s@%s", a.Repository, a.Tag, a.Digest)
	return nil
}

func (d DryRun) DeleteManifestLink(_ context.Context, a LinkAction) error {
	d.Log.WithField("reason", a.Reason).Infof("Would delete manifest link: %s@%s", a.Repository, a.Digest)
	return nil
}

func (d DryRun) DeleteLayerLink(_ context.Context, a LinkAction) error {
	d.Log.WithField("reason", a.Reason).Infof("Would delete layer link: %s@%s", a.Repository, a.Digest)
	return nil
}

func (d DryRun) DeleteUpload(_ context.Context, a UploadAction) error {
	d.Log.WithField("reason", a.Reason).Infof("Would delete upload: %s/%s", a.Repository, a.ID)
	return nil
}

func (d DryRun) DeleteBlob(_ context.Context, a BlobAction) error {
	d.Log.WithFields(logrus.Fields{"size": a.Size, "reason": a.Reason}).Infof("Would delete blob: %s", a.Digest)
	return nil
}

// Logged wraps the Remover of -prune=delete so that each deletion is logged before it is made.
type Logged struct {
	Remover
	Log logrus.FieldLogger
}

func (l Logged) DeleteRepository(ctx context.Context, a RepositoryAction) error {
	l.Log.WithField("reason", a.Reason).Infof("Deleting repository: %s", a.Name)
	return l.Remover.DeleteRepository(ctx, a)
}

func (l Logged) DeleteTag(ctx context.Context, a TagAction) error {
	l.Log.WithField("reason", a.Reason).Infof("Deleting tag: %s:%s", a.Repository, a.Tag)
	return l.Remover.DeleteTag(ctx, a)
}

func (l Logged) DeleteTagIndexEntry(ctx context.Context, a TagIndexAction) error {
	l.Log.Infof("Deleting tag index entry: %s:%s@%s", a.Repository, a.Tag, a.Digest)
	return l.Remover.DeleteTagIndexEntry(ctx, a)
}

func (l Logged) DeleteManifestLink(ctx context.Context, a LinkAction) error {
	l.Log.WithField("reason", a.Reason).Infof("Deleting manifest link: %s@%s", a.Repository, a.Digest)
	return l.Remover.DeleteManifestLink(ctx, a)
}

func (l Logged) DeleteLayerLink(ctx context.Context, a LinkAction) error {
	l.Log.WithField("reason", a.Reason).Infof("Deleting layer link: %s@%s", a.Repository, a.Digest)
	return l.Remover.DeleteLayerLink(ctx, a)
}

func (l Logged) DeleteUpload(ctx context.Context, a UploadAction) error {
	l.Log.WithField("reason", a.Reason).Infof("Deleting upload: %s/%s", a.Repository, a.ID)
	return l.Remover.DeleteUpload(ctx, a)
}

func (l Logged) DeleteBlob(ctx context.Context, a BlobAction) error {
	l.Log.WithFields(logrus.Fields{"size": a.Size, "reason": a.Reason}).Infof("Deleting blob: %s", a.Digest)
	return l.Remover.DeleteBlob(ctx, a)
}
