package imageapi

import (
	"context"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"

	"github.com/hardprune/image-registry/prune"
)

// Explain lists every Image and ImageStream like Source.References, and keeps besides, for
// target alone, the Images that use it and the tag history items that name them. It is the
// listing pass of -prune-explain; the prune's own pass keeps none of this.
func (l *Lister) Explain(ctx context.Context, target digest.Digest) (*prune.References, *prune.Usage, error) {
	var (
		refs  *prune.References
		usage *prune.Usage
	)
	err := l.Restarting(ctx, func(ctx context.Context) error {
		e := prune.NewExplainer(target)
		if err := l.EachImage(ctx, func(img *imagev1.Image) error {
			reduced, err := ReduceImage(img)
			if err != nil {
				return err
			}
			e.AddImage(reduced)
			return nil
		}); err != nil {
			return err
		}
		if err := l.EachImageStream(ctx, func(is *imagev1.ImageStream) error {
			st, err := TagHistories(is)
			if err != nil {
				return err
			}
			e.AddStream(st)
			return nil
		}); err != nil {
			return err
		}
		refs, usage = e.Build()
		return nil
	})
	return refs, usage, err
}
