package restore

import (
	"context"
	"fmt"

	imagev1 "github.com/openshift/api/image/v1"

	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// Check compares storage, read through store, with every Image and image stream of the image
// API, read through api, and reports what they disagree on.
func Check(ctx context.Context, api *imageapi.Lister, store *storage.Store) (*Report, error) {
	inv, err := store.Inventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading storage: %w", err)
	}
	var c *Checker
	err = api.Walk(ctx, imageapi.Pass{
		Start: func() { c = NewChecker(inv) },
		Image: func(img *imagev1.Image, reduced prune.Image) error {
			c.AddImage(reduced, imageapi.Managed(img))
			return nil
		},
		Stream: func(_ *imagev1.ImageStream, st prune.StreamTags) error {
			c.AddStream(st, imageapi.LocalReference)
			return nil
		},
		// A tag history item is judged by the Image it names.
		ImagesFirst: true,
	})
	if err != nil {
		return nil, fmt.Errorf("reading the image API: %w", err)
	}
	if err := c.FollowLists(ctx, store); err != nil {
		return nil, fmt.Errorf("reading storage: %w", err)
	}
	return c.Report(), nil
}
