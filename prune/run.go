package prune

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/hardprune/image-registry/internal/progress"
)

// ReferenceSource lists what the image API references. The imageapi package implements it.
// It must return an error, never a partial set, when it cannot read everything.
type ReferenceSource interface {
	References(ctx context.Context) (*References, error)
}

// InventorySource lists what storage holds. The storage package implements it.
type InventorySource interface {
	Inventory(ctx context.Context) (*Inventory, error)
}

// TagResolver reads the current links of tags in an inventory, setting Current and
// CurrentKnown. The storage package implements it.
type TagResolver interface {
	ResolveTags(ctx context.Context, inv *Inventory, tags []TagRef) error
}

// leaveAlone resolves tags as unreadable, which keeps them: for inventories that cannot read.
type leaveAlone struct{}

func (leaveAlone) ResolveTags(_ context.Context, inv *Inventory, tags []TagRef) error {
	for _, ref := range tags {
		if t := inv.Tag(ref); t != nil {
			// Not read, so not known to be missing either: the tag is left alone.
			t.Current, t.CurrentKnown, t.CurrentLinkMissing = "", true, false
		}
	}
	return nil
}

// DecideAndResolve decides, and when the decision needs the current links of some tags (see
// Plan.UnresolvedTags), reads just those through resolver and decides again. A nil resolver
// leaves such tags alone.
func DecideAndResolve(ctx context.Context, refs *References, inv *Inventory, opts Options, resolver TagResolver) (*Plan, error) {
	plan := Decide(refs, inv, opts)
	if len(plan.UnresolvedTags) == 0 {
		return plan, nil
	}
	if resolver == nil {
		resolver = leaveAlone{}
	}
	if err := resolver.ResolveTags(ctx, inv, plan.UnresolvedTags); err != nil {
		return nil, err
	}
	return Decide(refs, inv, opts), nil
}

// Config is one prune run.
type Config struct {
	References ReferenceSource
	Inventory  InventorySource
	// Remover deletes; nil means a dry run (-prune=check), which only logs.
	Remover Remover
	Options Options
	// Workers bounds the deletions under way at once.
	Workers int
	// AllowDeleteAll lets a delete run proceed when it would delete every stored blob, or when
	// the image API references nothing while storage holds blobs. Both usually mean the
	// pruner is reading the wrong cluster or the wrong storage.
	AllowDeleteAll bool
	Log            logrus.FieldLogger
}

// ErrWouldDeleteEverything is returned by a delete run that the everything-goes interlock stopped.
var ErrWouldDeleteEverything = errors.New("refusing to delete every blob in storage")

// Run marks, takes the inventory, decides and sweeps. The image API and storage are read at
// the same time: the run takes as long as the slower of the two, not their sum. That is safe
// because whatever a push stores while the run reads is younger than the grace period, and
// kept. Any error before the sweep means nothing was deleted.
func Run(ctx context.Context, cfg Config) (*Plan, Summary, error) {
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	var (
		refs *References
		inv  *Inventory
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if refs, err = cfg.References.References(gctx); err != nil {
			return fmt.Errorf("reading the image API (nothing was deleted): %w", err)
		}
		log.WithFields(logrus.Fields{"blobs": refs.Blobs.Len(), "imagestreams": refs.RepositoryCount()}).Info("read references from the image API")
		return nil
	})
	g.Go(func() error {
		var err error
		if inv, err = cfg.Inventory.Inventory(gctx); err != nil {
			return fmt.Errorf("reading storage (nothing was deleted): %w", err)
		}
		log.WithFields(logrus.Fields{"blobs": len(inv.Blobs), "repositories": len(inv.Repositories)}).Info("read the storage inventory")
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, Summary{}, err
	}

	resolver, _ := cfg.Inventory.(TagResolver)
	plan, err := DecideAndResolve(ctx, refs, inv, cfg.Options, resolver)
	if err != nil {
		return nil, Summary{}, fmt.Errorf("reading tags (nothing was deleted): %w", err)
	}
	log.WithFields(logrus.Fields{"blobs": len(plan.Blobs), "bytes": plan.BlobBytes(), "repositories": len(plan.Repositories),
		"manifestlinks": len(plan.ManifestLinks), "layerlinks": len(plan.LayerLinks)}).Info("decided what to delete")

	dryRun := cfg.Remover == nil
	if len(inv.Blobs) > 0 && (refs.Blobs.Len() == 0 || len(plan.Blobs) == len(inv.Blobs)) {
		why := fmt.Sprintf("the run would delete all %d blobs in storage (the image API references %d)", len(inv.Blobs), refs.Blobs.Len())
		switch {
		case dryRun:
			log.Warn(why + "; a delete run will refuse without -prune-allow-delete-all")
		case !cfg.AllowDeleteAll:
			return plan, Summary{}, fmt.Errorf("%w: %s; check that the pruner reads the right cluster and storage, then pass -prune-allow-delete-all to confirm", ErrWouldDeleteEverything, why)
		}
	}

	// A dry run deletes nothing, so one worker costs nothing and keeps the log in plan order.
	var remover Remover = DryRun{Log: log}
	workers := 1
	if !dryRun {
		remover = Logged{Remover: cfg.Remover, Log: log}
		workers = cfg.Workers
	}
	phase := progress.Start(log, "sweep")
	sum, err := Sweep(ctx, plan, remover, workers, phase)
	phase.Done()
	return plan, sum, err
}
