package imageapi

import (
	"context"
	"fmt"
	"sync"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/hardprune/image-registry/prune"
)

// DefaultPageSize is how many objects one list request asks for.
const DefaultPageSize = 500

// maxListAttempts bounds the restarts after an expired continue token.
const maxListAttempts = 3

// Source reads the references from the image API.
type Source struct {
	Client   imageclient.ImageV1Interface
	PageSize int64
	Log      logrus.FieldLogger
}

var _ prune.ReferenceSource = (*Source)(nil)

// NewClient builds an image API client that speaks JSON: protobuf bodies from some API servers
// do not decode into the image types.
func NewClient(cfg *rest.Config) (imageclient.ImageV1Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/json"
	cfg.AcceptContentTypes = "application/json"
	if cfg.UserAgent == "" {
		cfg.UserAgent = "dockerregistry-prune"
	}
	return imageclient.NewForConfig(cfg)
}

// References lists every Image and ImageStream. If the API server expires the continue token
// mid-listing, the whole listing starts over: a partial listing is never used.
func (s *Source) References(ctx context.Context) (*prune.References, error) {
	l := &Lister{Client: s.Client, PageSize: s.PageSize, Log: s.Log}
	var refs *prune.References
	err := l.Restarting(ctx, func(ctx context.Context) error {
		var err error
		refs, err = s.list(ctx, l)
		return err
	})
	return refs, err
}

func (s *Source) log() logrus.FieldLogger {
	if s.Log == nil {
		return logrus.StandardLogger()
	}
	return s.Log
}

// pageSize is the page size asked for: n, or DefaultPageSize when n is not positive.
func pageSize(n int64) int64 {
	if n <= 0 {
		return DefaultPageSize
	}
	return n
}

// list reads the Images and the ImageStreams, the two listings at the same time, reducing
// each object to its digests as its page arrives.
func (s *Source) list(ctx context.Context, l *Lister) (*prune.References, error) {
	b := prune.NewReferenceBuilder()
	var mu sync.Mutex // the builder is filled from both listings
	var images, streams int
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return l.EachImage(gctx, func(img *imagev1.Image) error {
			reduced, err := ReduceImage(img)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			b.AddImage(reduced)
			images++
			return nil
		})
	})
	g.Go(func() error {
		return l.EachImageStream(gctx, func(is *imagev1.ImageStream) error {
			reduced, err := ReduceStream(is)
			if err != nil {
				return err
			}
			logReferenceItems(s.log(), is)
			mu.Lock()
			defer mu.Unlock()
			b.AddStream(reduced)
			streams++
			return nil
		})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	s.log().WithFields(logrus.Fields{"images": images, "imagestreams": streams}).Debug("listed the image API")
	return b.Build(), nil
}

// explain adds what to do to the API errors administrators meet most.
func explain(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w (the pruner's identity needs the cluster role system:image-pruner: oc adm policy add-cluster-role-to-user system:image-pruner -z registry -n openshift-image-registry)", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w (the credentials were refused: check the token or kubeconfig)", err)
	}
	return err
}

// logReferenceItems logs, at debug level, the tag history items that name no image of this
// registry (reference tags), which the prune skips.
func logReferenceItems(log logrus.FieldLogger, is *imagev1.ImageStream) {
	for _, tag := range is.Status.Tags {
		for _, item := range tag.Items {
			if item.Image == "" {
				log.WithFields(logrus.Fields{"imagestream": is.Namespace + "/" + is.Name, "tag": tag.Tag, "reference": item.DockerImageReference}).
					Debug("skipping a tag history item without an image (a reference tag)")
			}
		}
	}
}
