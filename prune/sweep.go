package prune

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/internal/progress"
	"golang.org/x/sync/errgroup"
)

// Remover deletes stored objects. The storage package implements it over a storage driver;
// DryRun deletes nothing.
type Remover interface {
	Delete(ctx context.Context, o Object) error
}

// A BatchRemover also deletes many objects at once, as object stores' multi-object deletes do
// (S3's DeleteObjects takes up to 1000 keys a request). Sweep hands it each phase in batches of
// up to BatchSize objects, all of one phase, so that the order between phases holds.
type BatchRemover interface {
	Remover
	// DeleteBatch deletes objs and says, object by object, what became of each: errs[i] is
	// nil when objs[i] is gone.
	DeleteBatch(ctx context.Context, objs []Object) (errs []error)
}

// BatchSize is how many objects Sweep hands a BatchRemover at once: S3's limit for one request.
const BatchSize = 1000

// DryRun is the Remover of -prune=check: it deletes nothing, and a run given it logs each
// object as one it would delete. It alone says that a run is a dry run.
type DryRun struct{}

func (DryRun) Delete(context.Context, Object) error { return nil }

// IsDryRun tells whether r is the dry run's remover (logged or not).
func IsDryRun(r Remover) bool {
	switch l := r.(type) {
	case logged:
		r = l.Remover
	case loggedBatch:
		r = l.Remover
	}
	_, ok := r.(DryRun)
	return ok
}

// Summary counts what a sweep removed (or, in a dry run, would remove), by kind.
type Summary struct {
	DryRun bool
	Count  [numKinds]int
	// Bytes adds up the sizes of the objects of the sized kinds (blobs, uploads).
	Bytes [numKinds]int64
}

// Total is how many objects the sweep removed.
func (s Summary) Total() int {
	n := 0
	for _, c := range s.Count {
		n += c
	}
	return n
}

// Sweep executes a plan phase by phase (see kinds): repositories and links first, blobs last,
// so that a run stopped at any point leaves every remaining link pointing at an existing blob.
// Within a phase up to workers deletions run at once (for a BatchRemover, up to workers
// batches). The first error stops the sweep after the deletions under way, and no later phase
// starts; the summary counts what was done.
//
// phase, if not nil, counts each deletion for the progress reports.
func Sweep(ctx context.Context, plan *Plan, remover Remover, workers int, phase *progress.Phase) (Summary, error) {
	var (
		mu  sync.Mutex
		sum = Summary{DryRun: IsDryRun(remover)}
	)
	deleted := func(o Object) {
		mu.Lock()
		sum.Count[o.Kind]++
		sum.Bytes[o.Kind] += o.Size
		mu.Unlock()
		phase.Seen(1)
		if o.Kind == KindBlob {
			phase.Candidate(o.Size)
		}
	}
	// Every remover deletes batches; a plain one, batches of one object.
	size := 1
	deleteBatch := func(ctx context.Context, objs []Object) []error {
		return []error{remover.Delete(ctx, objs[0])}
	}
	if b, ok := remover.(BatchRemover); ok {
		size, deleteBatch = BatchSize, b.DeleteBatch
	}
	for _, kinds := range sweepPhases() {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(workers, 1))
		for batch := range phaseBatches(plan, kinds, size) {
			if gctx.Err() != nil {
				break
			}
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				var first error
				for i, err := range deleteBatch(gctx, batch) {
					if err == nil {
						deleted(batch[i])
					} else if first == nil {
						first = fmt.Errorf("deleting %s: %w", batch[i], err)
					}
				}
				return first
			})
		}
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

// phaseBatches yields the objects of one sweep phase, kind by kind, in batches of up to size:
// slices of the plan, which the remover must not change.
func phaseBatches(plan *Plan, kinds []Kind, size int) iter.Seq[[]Object] {
	return func(yield func([]Object) bool) {
		for _, k := range kinds {
			for objs := range slices.Chunk(plan.Of(k), size) {
				if !yield(objs) {
					return
				}
			}
		}
	}
}

// logged logs each object before its remover deletes it: "Deleting blob: sha256:…", or, for
// the dry run's remover, "Would delete blob: sha256:…", with the reason as a field.
type logged struct {
	Remover
	log logrus.FieldLogger
}

func (l logged) Delete(ctx context.Context, o Object) error {
	l.line(o)
	return l.Remover.Delete(ctx, o)
}

func (l logged) line(o Object) {
	verb := "Deleting"
	if IsDryRun(l.Remover) {
		verb = "Would delete"
	}
	fields := logrus.Fields{"reason": o.Why(), "rule": o.Reason.String()}
	if o.Kind == KindBlob {
		fields["size"] = o.Size
	}
	l.log.WithFields(fields).Infof("%s %s: %s", verb, o.Kind, o.Ref())
}

// loggedBatch is logged over a BatchRemover: it logs each object of a batch, then hands the
// batch on.
type loggedBatch struct {
	logged
	batches BatchRemover
}

func (l loggedBatch) DeleteBatch(ctx context.Context, objs []Object) []error {
	for _, o := range objs {
		l.line(o)
	}
	return l.batches.DeleteBatch(ctx, objs)
}

// withLog wraps r so that each object is logged before it is deleted, keeping r's batches.
func withLog(r Remover, log logrus.FieldLogger) Remover {
	l := logged{Remover: r, log: log}
	if b, ok := r.(BatchRemover); ok {
		return loggedBatch{logged: l, batches: b}
	}
	return l
}

// infoLogged tells whether log writes info lines: when it does not, the sweep skips the
// per-object line (and its reason's formatting) altogether.
func infoLogged(log logrus.FieldLogger) bool {
	switch l := log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.InfoLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.InfoLevel)
	}
	return true
}
