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

// TagResolver reads the current links of tags in an inventory, setting their State and
// Current. The storage package implements it.
type TagResolver interface {
	ResolveTags(ctx context.Context, inv *Inventory, tags []TagRef) error
}

// leaveAlone resolves tags as unreadable, which keeps them: for inventories that cannot read.
type leaveAlone struct{}

func (leaveAlone) ResolveTags(_ context.Context, inv *Inventory, tags []TagRef) error {
	for _, ref := range tags {
		if t := inv.Tag(ref); t != nil {
			// Not read, so not known to be missing either: the tag is left alone.
			t.Current, t.State = "", TagRead
		}
	}
	return nil
}

// DecideAndResolve decides, and when the decision needs the current links of some tags (see
// Plan.UnresolvedTags), reads just those through resolver and decides again. A nil resolver
// leaves such tags alone.
func DecideAndResolve(
	ctx context.Context,
	refs *References,
	inv *Inventory,
	opts Options,
	resolver TagResolver,
) (*Plan, error) {
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
	// Remover deletes; DryRun{} makes the run a dry run (-prune=check), which only logs.
	Remover Remover
	Options Options
	// Workers bounds the deletions under way at once.
	Workers int
	// AllowDeleteAll lets a delete run proceed when it would delete every stored blob, when
	// the image API references nothing while storage holds blobs, or when no stored
	// repository has an image stream. Each usually means the pruner is reading the wrong
	// cluster or the wrong storage.
	AllowDeleteAll bool
	// MaxDeleteRatio is the largest share of the stored repositories, and of the stored blob
	// bytes, that a delete run removes without being told to (a larger one is what a pruner
	// reading the wrong cluster does), weighed from MinRepositoriesForRatio repositories on;
	// 0 means DefaultMaxDeleteRatio, 1 lets any share go, and so does AllowDeleteAll.
	MaxDeleteRatio float64
	// BeforeSweep, when set, is called once before the first deletion of a delete run; an
	// error stops the run there, with nothing deleted (the storage lock reads itself back).
	BeforeSweep func(context.Context) error
	// Manifests reads manifests from storage where the image API cannot say what they use;
	// nil takes the Inventory when it can, else such repositories keep everything.
	Manifests ManifestReader
	// Guard, when set, makes a delete run online (see Guard): each batch is claimed before
	// its deletion, and what the serving registries used meanwhile stays.
	Guard Guard
	Log   logrus.FieldLogger
}

// manifestReader is where manifests are read from storage: Manifests, else the Inventory when
// it can, else nowhere (nil).
func (cfg Config) manifestReader() ManifestReader {
	if cfg.Manifests != nil {
		return cfg.Manifests
	}
	manifests, _ := cfg.Inventory.(ManifestReader)
	return manifests
}

// tagResolver reads tags through the Inventory when it can; otherwise they are left alone.
func (cfg Config) tagResolver() TagResolver {
	if resolver, ok := cfg.Inventory.(TagResolver); ok {
		return resolver
	}
	return leaveAlone{}
}

// DefaultMaxDeleteRatio is the default of Config.MaxDeleteRatio.
const DefaultMaxDeleteRatio = 0.5

// MinRepositoriesForRatio is the number of stored repositories from which MaxDeleteRatio is
// weighed. Below it a share says little (one stream deleted of three is a third), and the
// wrong cluster still shows: none of the stored repositories has an image stream.
const MinRepositoriesForRatio = 10

// ErrWouldDeleteEverything is returned by a delete run that the wrong-cluster interlock
// stopped before deleting anything.
var ErrWouldDeleteEverything = errors.New("refusing to delete")

// Run marks, takes the inventory, decides and sweeps. The image API and storage are read at
// the same time: the run takes as long as the slower of the two, not their sum. That is safe
// because whatever a push stores while the run reads is younger than the grace period, and
// kept. Any error before the sweep means nothing was deleted.
func Run(ctx context.Context, cfg Config) (*Plan, Summary, error) {
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	if cfg.Remover == nil {
		return nil, Summary{}, errors.New("prune.Run: no Remover (DryRun{} for a dry run)")
	}
	dryRun := IsDryRun(cfg.Remover)
	none := Summary{DryRun: dryRun} // what a run that stops before the sweep removed
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
		log.WithFields(logrus.Fields{"blobs": refs.Blobs.Len(), "imagestreams": refs.RepositoryCount()}).
			Info("read references from the image API")
		return nil
	})
	g.Go(func() error {
		var err error
		if inv, err = cfg.Inventory.Inventory(gctx); err != nil {
			return fmt.Errorf("reading storage (nothing was deleted): %w", err)
		}
		log.WithFields(logrus.Fields{"blobs": len(inv.Blobs), "repositories": len(inv.Repositories)}).
			Info("read the storage inventory")
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, none, err
	}

	if err := refs.Resolve(ctx, cfg.manifestReader(), cfg.Workers); err != nil {
		return nil, none, fmt.Errorf("reading manifests from storage (nothing was deleted): %w", err)
	}
	for _, repo := range refs.FailingClosed() {
		log.Warnf(
			"repository %s keeps every link and tag this run: what its image stream uses is not fully known (%s)",
			repo,
			refs.Repository(repo).unknownWhy(),
		)
	}

	plan, err := DecideAndResolve(ctx, refs, inv, cfg.Options, cfg.tagResolver())
	if err != nil {
		return nil, none, fmt.Errorf("reading tags (nothing was deleted): %w", err)
	}
	log.WithFields(logrus.Fields{
		"blobs":         len(plan.Of(KindBlob)),
		"bytes":         plan.BlobBytes(),
		"repositories":  len(plan.Of(KindRepository)),
		"manifestlinks": len(plan.Of(KindManifestLink)),
		"layerlinks":    len(plan.Of(KindLayerLink)),
	}).Info("decided what to delete")

	for _, c := range interlock(refs, inv, plan, cfg) {
		switch {
		case dryRun:
			log.Warnf("%s; a delete run will refuse without %s", c.why, c.override)
		case !c.overridden:
			return plan, none, fmt.Errorf(
				"%w %s: check that the pruner reads the right cluster and storage, then pass %s to confirm",
				ErrWouldDeleteEverything,
				c.why,
				c.override,
			)
		}
	}

	if !dryRun && cfg.BeforeSweep != nil {
		if err := cfg.BeforeSweep(ctx); err != nil {
			return plan, none, fmt.Errorf("%w (nothing was deleted)", err)
		}
	}

	// A dry run deletes nothing, so one worker costs nothing and keeps the log in plan order.
	remover, workers := cfg.Remover, cfg.Workers
	if dryRun {
		workers = 1
	}
	if infoLogged(log) {
		remover = withLog(remover, log)
	}
	phase := progress.Start(log, "sweep")
	guard := cfg.Guard
	if dryRun {
		guard = nil
	}
	sum, err := SweepGuarded(ctx, plan, remover, workers, phase, guard)
	phase.Done()
	return plan, sum, err
}

// caution is one sign that the run reads the wrong cluster or the wrong storage.
type caution struct {
	why, override string
	overridden    bool
}

// interlock lists the signs of a pruner pointed at the wrong cluster or storage: the plan
// removes every blob, or more than the allowed share of the repositories or of the bytes, or
// the image API names none of the stored repositories.
func interlock(refs *References, inv *Inventory, plan *Plan, cfg Config) []caution {
	if plan.Len() == 0 {
		return nil // a run that deletes nothing cannot do the wrong cluster harm
	}
	var out []caution
	const all = "-prune-allow-delete-all"
	if len(inv.Blobs) > 0 && (refs.Blobs.Len() == 0 || len(plan.Of(KindBlob)) == len(inv.Blobs)) {
		out = append(
			out,
			caution{
				why: fmt.Sprintf(
					"every blob in storage: the run would delete all %d blobs (the image API references %d)",
					len(inv.Blobs),
					refs.Blobs.Len(),
				),
				override:   all,
				overridden: cfg.AllowDeleteAll,
			},
		)
	}
	// One repository whose stream was deleted is an ordinary clean-up; several, none of which
	// the API names, are another cluster's.
	if len(inv.Repositories) >= 2 {
		streams := 0
		for _, r := range inv.Repositories {
			if refs.Repository(r.Name) != nil {
				streams++
			}
		}
		if streams == 0 {
			out = append(
				out,
				caution{
					why: fmt.Sprintf(
						"the repositories of a cluster that has none of them: none of the %d stored repositories has an image stream",
						len(inv.Repositories),
					),
					override:   all,
					overridden: cfg.AllowDeleteAll,
				},
			)
		}
	}
	if len(inv.Repositories) < MinRepositoriesForRatio {
		// A share of a handful of repositories says little: the checks above stand alone.
		return append(out, storageCautions(inv, plan, cfg)...)
	}
	ratio := cfg.MaxDeleteRatio
	if ratio <= 0 {
		ratio = DefaultMaxDeleteRatio
	}
	flag := fmt.Sprintf("-prune-max-delete-ratio=%g", ratio)
	override := "-prune-max-delete-ratio=1"
	if n := len(inv.Repositories); float64(len(plan.Of(KindRepository))) > ratio*float64(n) {
		out = append(out, caution{why: fmt.Sprintf(
			"%d of the %d stored repositories (%.0f%%, more than %s)",
			len(
				plan.Of(KindRepository),
			),
			n,
			100*float64(len(plan.Of(KindRepository)))/float64(n),
			flag,
		), override: override, overridden: cfg.AllowDeleteAll})
	}
	var stored int64
	for _, b := range inv.Blobs {
		stored += b.Size
	}
	if freed := plan.BlobBytes(); stored > 0 && float64(freed) > ratio*float64(stored) {
		out = append(out, caution{why: fmt.Sprintf(
			"%s of the %s of stored blobs (%.0f%%, more than %s)",
			FormatSize(
				freed,
			),
			FormatSize(stored),
			100*float64(freed)/float64(stored),
			flag,
		), override: override, overridden: cfg.AllowDeleteAll})
	}
	return append(out, storageCautions(inv, plan, cfg)...)
}

// storageCautions weighs storage that has no repositories/ directory: its blobs all look
// unlinked, most often because rootdirectory (or the bucket) is wrong.
func storageCautions(inv *Inventory, plan *Plan, cfg Config) []caution {
	if inv.RepositoriesMissing && len(plan.Of(KindBlob)) > 0 {
		return []caution{
			{
				why: fmt.Sprintf(
					"blobs from storage that has no repositories/ directory (is rootdirectory right?): %d blobs",
					len(plan.Of(KindBlob)),
				),
				override:   "-prune-allow-delete-all",
				overridden: cfg.AllowDeleteAll,
			},
		}
	}
	return nil
}
