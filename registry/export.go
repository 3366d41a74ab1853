package registry

import (
	"context"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
)

// ImageFor builds the Image object the push middleware creates for a manifest pushed to repo,
// so that -restore=recover recreates exactly what a push would have.
func ImageFor(repo string, dgst digest.Digest, manifest distribution.Manifest) (*imagev1.Image, error) {
	return imageFor(repo, dgst, manifest)
}

// RecordImage creates img in the image API as a push does; an Image that exists already is
// left as it is.
func RecordImage(ctx context.Context, client imageclient.ImageV1Interface, img *imagev1.Image) error {
	return (&imageStreamRepository{client: client}).recordImage(ctx, img)
}

// RecordTag puts img at the head of the history of repo's tag as a push by tag does, creating
// the image stream if needed.
func RecordTag(ctx context.Context, client imageclient.ImageV1Interface, repo, tag string, img *imagev1.Image) error {
	return (&imageStreamRepository{client: client}).recordTag(ctx, repo, tag, img)
}
