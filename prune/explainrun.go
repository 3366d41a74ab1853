package prune

import (
	"context"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
)

// ExplainSource lists what the image API references, like a ReferenceSource, and keeps besides
// what it says about one digest: the listing pass of -prune-explain. The imageapi package
// implements it.
type ExplainSource interface {
	Explain(ctx context.Context, target digest.Digest) (*References, *Usage, error)
}

// ExplainRun decides as Run does and tells what the decision does with target, and why; it
// deletes nothing. cfg.References must be an ExplainSource; cfg's Remover, BeforeSweep and
// interlock settings play no part.
func ExplainRun(ctx context.Context, cfg Config, target digest.Digest) (*Explanation, error) {
	src, ok := cfg.References.(ExplainSource)
	if !ok {
		return nil, fmt.Errorf(
			"explaining %s: %T cannot say what the image API holds about one digest",
			target,
			cfg.References,
		)
	}
	refs, usage, err := src.Explain(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("reading the image API: %w", err)
	}
	inv, err := cfg.Inventory.Inventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading storage: %w", err)
	}
	if err := refs.Resolve(ctx, cfg.manifestReader(), cfg.Workers); err != nil {
		return nil, fmt.Errorf("reading storage: %w", err)
	}
	// The explanation names the tags pointing at the digest: read those tags' current links,
	// which the decision reads only where it needs them.
	resolver := cfg.tagResolver()
	if err := resolver.ResolveTags(ctx, inv, tagsNaming(inv, target)); err != nil {
		return nil, fmt.Errorf("reading storage: %w", err)
	}
	// Deciding reads the current links of the tags it cannot decide without; Explain then
	// decides again, over the tags as read.
	if _, err := DecideAndResolve(ctx, refs, inv, cfg.Options, resolver); err != nil {
		return nil, fmt.Errorf("reading storage: %w", err)
	}
	return Explain(target, usage, refs, inv, cfg.Options), nil
}

// tagsNaming lists the stored tags whose index names d.
func tagsNaming(inv *Inventory, d digest.Digest) []TagRef {
	var tags []TagRef
	for _, r := range inv.Repositories {
		for _, t := range r.Tags {
			if slices.Contains(t.Index, d) {
				tags = append(tags, TagRef{Repository: r.Name, Tag: t.Name})
			}
		}
	}
	return tags
}
