package imageapi

import (
	"context"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"

	"github.com/hardprune/image-registry/prune"
)

// Explain lists every Image and ImageStream like References, and keeps besides, for target
// alone, the Images that use it and the tag history items that name them. It is the listing
// pass of -prune-explain; the prune's own pass keeps none of this.
func (l *Lister) Explain(ctx context.Context, target digest.Digest) (*prune.References, *prune.Usage, error) {
	var e *prune.Explainer
	err := l.Walk(ctx, Pass{
		Start: func() { e = prune.NewExplainer(target) },
		Image: func(_ *imagev1.Image, img prune.Image) error {
			e.AddImage(img)
			return nil
		},
		Stream: func(_ *imagev1.ImageStream, st prune.StreamTags) error {
			e.AddStream(st)
			return nil
		},
		// The Explainer finds the tags keeping the target from the Images that use it.
		ImagesFirst: true,
	})
	if err != nil {
		return nil, nil, err
	}
	refs, usage := e.Build()
	return refs, usage, nil
}
