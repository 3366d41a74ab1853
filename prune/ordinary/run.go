package ordinary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/hardprune/image-registry/prune"
)

// ErrInvalidReferences is what Run returns when objects of the cluster name images by
// references that do not parse, and the run was not told to ignore them: what such an object
// uses is not known, so nothing may go.
var ErrInvalidReferences = errors.New("invalid image references")

// Config is how Run reaches the world and reports to it.
type Config struct {
	// Cluster is the image API.
	Cluster Cluster
	// Registry deletes registry data (layer links, manifest links, blobs). It may be nil when
	// Options.PruneRegistry is false, or in a dry run, which never calls it.
	Registry prune.Remover
	// BlobModified, when set, says when a blob was last written (the zero time for a blob
	// that does not exist); a blob modified within Grace before Options.Now, or after it, is
	// kept: a push may be reusing it (the hard prune's grace period).
	BlobModified func(ctx context.Context, d digest.Digest) (time.Time, error)
	Grace        time.Duration
	// DryRun reads and decides, prints what would be done, and changes nothing.
	DryRun bool
	// IgnoreInvalidRefs goes on despite references that do not parse (-ignore-invalid-refs).
	IgnoreInvalidRefs bool
	// Workers is how many streams are updated, or Images deleted, at once (oc's
	// --num-workers, 5); less than 1 is 1.
	Workers int
	// Out gets oc's progress lines and the summary; ErrOut the dry-run header and the invalid
	// references. Nil discards.
	Out, ErrOut io.Writer
	// Log gets the failures as they happen and the blobs kept for their age; nil discards.
	Log logrus.FieldLogger
}

// Input is what imageapi read, reduced.
type Input struct {
	Images    map[digest.Digest]*Image
	Streams   []*Stream
	Referrers *Referrers
	Limits    Limits
	Options   Options
}

// Stats counts what a run did (in a dry run, would have done), as oc's PruneStats does.
type Stats struct {
	DeletedImages              int
	DeletedImageStreamTagItems int
	UpdatedImageStreams        int
	DeletedLayerLinks          int
	DeletedManifestLinks       int
	DeletedBlobs               int
}

// String is oc's summary: the counts that are not zero, or "deleted 0 objects".
func (s Stats) String() string {
	var parts []string
	add := func(n int, format string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf(format, n))
		}
	}
	add(s.DeletedImages, "deleted %d image object(s)")
	add(s.DeletedImageStreamTagItems, "deleted %d image stream tag item(s)")
	add(s.UpdatedImageStreams, "updated %d image stream(s)")
	add(s.DeletedLayerLinks, "deleted %d layer link(s)")
	add(s.DeletedManifestLinks, "deleted %d manifest link(s)")
	add(s.DeletedBlobs, "deleted %d blob(s)")
	if len(parts) == 0 {
		return "deleted 0 objects"
	}
	return strings.Join(parts, ", ")
}

// Run prunes: the streams' histories first, each stream's links right after its update
// succeeds, then the Images no remaining history names, each Image's blobs after the Image.
// A failure is collected and the run goes on with what does not depend on it; Run returns the
// failures joined. The last line written to Out is "Summary: <stats>", also on failure.
func Run(ctx context.Context, cfg Config, in *Input) (Stats, error) {
	r := newRunner(cfg, in)
	err := r.run(ctx)
	r.mu.Lock()
	stats := r.stats
	r.mu.Unlock()
	fmt.Fprintf(r.out, "Summary: %s\n", stats)
	return stats, err
}

// runner is one run's state, shared by its workers.
type runner struct {
	cfg         Config
	in          *Input
	out, errOut io.Writer
	log         logrus.FieldLogger
	workers     int

	mu    sync.Mutex // guards what follows, and writes to out
	stats Stats
	errs  []error
}

func newRunner(cfg Config, in *Input) *runner {
	r := &runner{cfg: cfg, in: in, out: cfg.Out, errOut: cfg.ErrOut, log: cfg.Log, workers: max(cfg.Workers, 1)}
	if r.out == nil {
		r.out = io.Discard
	}
	if r.errOut == nil {
		r.errOut = io.Discard
	}
	if r.log == nil {
		quiet := logrus.New()
		quiet.SetOutput(io.Discard)
		r.log = quiet
	}
	return r
}

func (r *runner) run(ctx context.Context) error {
	if r.cfg.Cluster == nil {
		return errors.New("the ordinary prune needs a Cluster")
	}
	if r.in.Options.PruneRegistry && r.cfg.Registry == nil && !r.cfg.DryRun {
		return errors.New("pruning the registry needs a Registry to delete its data with")
	}
	if err := r.checkReferences(); err != nil {
		return err
	}
	if r.cfg.DryRun {
		fmt.Fprintln(r.errOut, "Dry run enabled - no modifications will be made. Add --confirm to remove images")
	}
	if !r.in.Options.PruneRegistry {
		fmt.Fprintln(r.out, "Only API objects will be removed.  No modifications to the image registry will be made.")
	}

	remaining := r.streams(ctx)
	if err := ctx.Err(); err != nil {
		return r.stopped(err)
	}
	if r.in.Options.Namespace == "" {
		r.images(ctx, remaining)
		if err := ctx.Err(); err != nil {
			return r.stopped(err)
		}
	}
	return errors.Join(r.errs...)
}

// stopped is the run's error once the context ended it.
func (r *runner) stopped(cause error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(append([]error{fmt.Errorf("stopped before the prune finished: %w", cause)}, r.errs...)...)
}

// checkReferences stops the run on references that do not parse, before any change, unless
// told to ignore them; then it warns of them.
func (r *runner) checkReferences() error {
	if r.in.Referrers == nil || len(r.in.Referrers.Invalid) == 0 {
		return nil
	}
	var b strings.Builder
	invalid := r.in.Referrers.Invalid
	if r.cfg.IgnoreInvalidRefs {
		b.WriteString("Warning: the following objects have invalid references; " +
			"-ignore-invalid-refs goes on without them, so the images they name are not protected:\n\n")
	} else {
		b.WriteString("The following objects have invalid references:\n\n")
	}
	for _, ref := range invalid {
		fmt.Fprintf(&b, "  %s\n", ref.Error())
	}
	if r.cfg.IgnoreInvalidRefs {
		b.WriteString("\n")
		io.WriteString(r.errOut, b.String())
		return nil
	}
	b.WriteString("\nEither fix the references or delete the objects to make the pruner proceed.\n")
	io.WriteString(r.errOut, b.String())
	count := fmt.Sprintf("%d references do not parse", len(invalid))
	if len(invalid) == 1 {
		count = "1 reference does not parse"
	}
	return fmt.Errorf("%w: %s, so nothing was pruned; "+
		"fix or delete the objects naming them, or run with -ignore-invalid-refs to go on without them",
		ErrInvalidReferences, count)
}

// fail collects a failure; the run goes on.
func (r *runner) fail(err error, fields logrus.Fields) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.log.WithFields(fields).WithError(err).Warn("ordinary prune: a step failed; what depends on it is kept")
}

// count adds to the stats.
func (r *runner) count(add func(*Stats)) {
	r.mu.Lock()
	add(&r.stats)
	r.mu.Unlock()
}

// write writes lines to Out at once, so that workers' lines do not interleave.
func (r *runner) write(lines string) {
	if lines == "" {
		return
	}
	r.mu.Lock()
	io.WriteString(r.out, lines)
	r.mu.Unlock()
}

// streams updates every stream, r.workers at once, and returns the streams as they remain:
// the kept items of each stream updated, the items read of any other (a failed update, a
// stream that no longer exists, one not reached), so that the Images they name stay.
func (r *runner) streams(ctx context.Context) []*Stream {
	remaining := make([]*Stream, len(r.in.Streams))
	g := new(errgroup.Group)
	g.SetLimit(r.workers)
	for i, s := range r.in.Streams {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			remaining[i] = r.stream(ctx, s)
			return nil
		})
	}
	_ = g.Wait()
	for i, s := range remaining {
		if s == nil {
			remaining[i] = r.in.Streams[i]
		}
	}
	return remaining
}

// stream updates one stream, then deletes the links its removed items held; it returns the
// stream as it remains, or nil when it is not known.
func (r *runner) stream(ctx context.Context, s *Stream) *Stream {
	if ctx.Err() != nil {
		return nil
	}
	in := r.in
	decide := func(fresh *Stream) *StreamPlan {
		return DecideStream(fresh, in.Images, in.Referrers, in.Limits, in.Options)
	}
	// A dry run decides on the stream as listed: it changes nothing, so it needs none of the
	// fresh read that a write's optimistic concurrency does (at 10k streams, 10k requests).
	// A confirmed run reads every stream afresh, also those the listing says lose nothing, so
	// that an item added since the listing keeps its Image from the deletions that follow.
	plan := decide(s)
	if !r.cfg.DryRun {
		var err error
		plan, err = r.cfg.Cluster.UpdateStream(ctx, s.Namespace, s.Name, decide)
		if err != nil {
			r.fail(fmt.Errorf("imagestream %s: %w", s.Repository(), err), logrus.Fields{"imagestream": s.Repository()})
			return nil
		}
	}
	if plan == nil {
		return nil
	}
	var lines strings.Builder
	defer func() { r.write(lines.String()) }()
	if plan.Removed > 0 {
		fmt.Fprintf(&lines, "Deleting %d items from image stream %s\n", plan.Removed, s.Repository())
		r.count(func(st *Stats) {
			st.DeletedImageStreamTagItems += plan.Removed
			st.UpdatedImageStreams++
		})
	}
	if in.Options.PruneRegistry && plan.LinksKeptFor != "" {
		r.log.WithFields(logrus.Fields{"repository": s.Repository(), "image": plan.LinksKeptFor}).
			Warn("Keeping every link of the repository: a kept image does not name every blob it uses")
	}
	if in.Options.PruneRegistry {
		for _, d := range plan.LayerLinks {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(&lines, "Deleting layer link %s in repository %s\n", d, s.Repository())
			if r.remove(ctx, prune.Object{Kind: prune.KindLayerLink, Repository: s.Repository(), Digest: d}) {
				r.count(func(st *Stats) { st.DeletedLayerLinks++ })
			}
		}
		for _, d := range plan.ManifestLinks {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(&lines, "Deleting manifest link %s in repository %s\n", d, s.Repository())
			if r.remove(ctx, prune.Object{Kind: prune.KindManifestLink, Repository: s.Repository(), Digest: d}) {
				r.count(func(st *Stats) { st.DeletedManifestLinks++ })
			}
		}
	}
	return plan.Remaining()
}

// remove deletes registry data, unless in a dry run; it tells whether o is gone (or, in a dry
// run, would be).
func (r *runner) remove(ctx context.Context, o prune.Object) bool {
	if r.cfg.DryRun {
		return true
	}
	if err := r.cfg.Registry.Delete(ctx, o); err != nil {
		r.fail(fmt.Errorf("deleting %s: %w", o, err), logrus.Fields{"object": o.String()})
		return false
	}
	return true
}

// images deletes the Images no remaining stream names, r.workers at once, and each blob once
// every deleted Image naming it is gone.
func (r *runner) images(ctx context.Context, remaining []*Stream) {
	plan := DecideImages(r.in.Images, remaining, r.in.Options)
	if r.in.Options.PruneRegistry {
		if plan.BlobsKeptFor != "" {
			r.log.WithField("image", plan.BlobsKeptFor).
				Warn("Keeping every blob: a kept image names neither its layers nor its children, so any blob may be one it uses")
		} else if plan.ConfigsKeptFor != "" {
			r.log.WithField("image", plan.ConfigsKeptFor).
				Warn("Keeping the config blobs of the deleted images: a kept image does not name its config")
		}
	}
	// pending counts, per blob, the Images naming it whose deletion has not succeeded yet.
	pending := map[digest.Digest]int{}
	for _, del := range plan.Delete {
		for _, b := range del.Blobs {
			pending[b]++
		}
	}
	g := new(errgroup.Group)
	g.SetLimit(r.workers)
	for _, del := range plan.Delete {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			r.image(ctx, del, pending)
			return nil
		})
	}
	_ = g.Wait()
}

// image deletes one Image, then the blobs it was the last deleted Image to name.
func (r *runner) image(ctx context.Context, del ImageDeletion, pending map[digest.Digest]int) {
	if ctx.Err() != nil {
		return
	}
	r.write(fmt.Sprintf("Deleting image %s\n", del.Image))
	if !r.cfg.DryRun {
		if err := r.cfg.Cluster.DeleteImage(ctx, del.Image); err != nil {
			r.fail(fmt.Errorf("deleting image %s: %w", del.Image, err), logrus.Fields{"image": del.Image})
			return
		}
	}
	r.count(func(st *Stats) { st.DeletedImages++ })

	var released []digest.Digest
	r.mu.Lock()
	for _, b := range del.Blobs {
		if pending[b]--; pending[b] == 0 {
			released = append(released, b)
		}
	}
	r.mu.Unlock()
	for _, b := range released {
		if ctx.Err() != nil {
			return
		}
		r.blob(ctx, b)
	}
}

// blob deletes a blob no Image names any more, unless it was written within the grace period.
func (r *runner) blob(ctx context.Context, d digest.Digest) {
	if r.cfg.BlobModified != nil {
		modified, err := r.cfg.BlobModified(ctx, d)
		if err != nil {
			r.fail(fmt.Errorf("blob %s: reading when it was last written: %w (the blob is kept)", d, err),
				logrus.Fields{"digest": d})
			return
		}
		if modified.After(r.in.Options.Now.Add(-r.cfg.Grace)) {
			r.log.WithFields(logrus.Fields{"digest": d, "modified": modified}).
				Info("Keeping blob: written within the grace period, a push may be reusing it")
			return
		}
	}
	r.write(fmt.Sprintf("Deleting blob %s\n", d))
	if r.remove(ctx, prune.Object{Kind: prune.KindBlob, Digest: d}) {
		r.count(func(st *Stats) { st.DeletedBlobs++ })
	}
}
