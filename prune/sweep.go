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

// Guard is an online prune's side of its protocol with the serving registries (package
// online): before each batch the sweep claims it, and deletes only the objects the registries
// did not use meanwhile.
type Guard interface {
	// Claim announces that objs are about to be deleted and says, object by object, which
	// must stay (inUse[i]). release ends the claim once the batch's deletions are over.
	Claim(ctx context.Context, objs []Object) (inUse []bool, release func(), err error)
}

// Summary counts what a sweep removed (or, in a dry run, would remove), by kind.
type Summary struct {
	DryRun bool
	Count  [numKinds]int
	// Bytes adds up the sizes of the objects of the sized kinds (blobs, uploads).
	Bytes [numKinds]int64
	// InUse counts the objects of the plan an online prune kept because a registry used them
	// during the run.
	InUse [numKinds]int
}

// Total is how many objects the sweep removed.
func (s Summary) Total() int {
	n := 0
	for _, c := range s.Count {
		n += c
	}
	return n
}

// TotalInUse is how many objects an online prune kept because a registry used them.
func (s Summary) TotalInUse() int {
	n := 0
	for _, c := range s.InUse {
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
	return SweepGuarded(ctx, plan, remover, workers, phase, nil)
}

// SweepGuarded is Sweep with a guard (nil: none): every batch is claimed before its deletion,
// and the objects the guard says are in use stay. A plain remover then deletes batch by
// batch, up to workers objects of a batch at once, so that few claims are out at a time.
func SweepGuarded(
	ctx context.Context,
	plan *Plan,
	remover Remover,
	workers int,
	phase *progress.Phase,
	guard Guard,
) (Summary, error) {
	var (
		mu  sync.Mutex
		sum = Summary{DryRun: IsDryRun(remover)}
	)
	workers = max(workers, 1)
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
	// Every remover deletes batches; a plain one, batches of one object (under a guard, of
	// up to BatchSize objects, workers at a time).
	size, batchesAtOnce := 1, workers
	deleteBatch := func(ctx context.Context, objs []Object) []error {
		return []error{remover.Delete(ctx, objs[0])}
	}
	if b, ok := remover.(BatchRemover); ok {
		size, deleteBatch = BatchSize, b.DeleteBatch
	} else if guard != nil {
		size, batchesAtOnce = BatchSize, 1
		deleteBatch = func(ctx context.Context, objs []Object) []error {
			return deleteEach(ctx, remover, objs, workers)
		}
	}
	if guard != nil {
		deleteBatch = guarded(guard, deleteBatch, func(o Object) {
			mu.Lock()
			sum.InUse[o.Kind]++
			mu.Unlock()
		})
	}
	for _, kinds := range sweepPhases() {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(batchesAtOnce)
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
					switch {
					case err == nil:
						deleted(batch[i])
					case errors.Is(err, errKept):
					case first == nil:
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

// errKept marks, in a guarded batch's results, an object the guard kept.
var errKept = errors.New("kept: in use")

// guarded claims each batch through guard and hands on only the objects not in use; kept is
// told of the others.
func guarded(
	guard Guard,
	deleteBatch func(context.Context, []Object) []error,
	kept func(Object),
) func(context.Context, []Object) []error {
	return func(ctx context.Context, objs []Object) []error {
		errs := make([]error, len(objs))
		inUse, release, err := guard.Claim(ctx, objs)
		if err != nil {
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
		defer release()
		var (
			free  []Object
			index []int
		)
		for i, o := range objs {
			if inUse[i] {
				errs[i] = errKept
				kept(o)
				continue
			}
			free = append(free, o)
			index = append(index, i)
		}
		if len(free) == 0 {
			return errs
		}
		for j, err := range deleteBatch(ctx, free) {
			errs[index[j]] = err
		}
		return errs
	}
}

// deleteEach deletes objs through a plain remover, up to workers at once; after the first
// error it starts no more.
func deleteEach(ctx context.Context, remover Remover, objs []Object, workers int) []error {
	errs := make([]error, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, o := range objs {
		if gctx.Err() != nil {
			errs[i] = gctx.Err()
			continue
		}
		g.Go(func() error {
			errs[i] = remover.Delete(gctx, o)
			return errs[i]
		})
	}
	_ = g.Wait()
	return errs
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
