package imageapi

import (
	"context"
	"fmt"
	"sync"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/pager"

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
	var lastErr error
	for attempt := 1; attempt <= maxListAttempts; attempt++ {
		refs, err := s.list(ctx)
		if err == nil {
			return refs, nil
		}
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			return nil, err
		}
		lastErr = err
		s.log().WithError(err).Warnf("the list expired mid-way; starting over (attempt %d of %d)", attempt+1, maxListAttempts)
	}
	return nil, fmt.Errorf("listing kept expiring after %d attempts: %w", maxListAttempts, lastErr)
}

func (s *Source) log() logrus.FieldLogger {
	if s.Log == nil {
		return logrus.StandardLogger()
	}
	return s.Log
}

func (s *Source) pageSize() int64 {
	if s.PageSize <= 0 {
		return DefaultPageSize
	}
	return s.PageSize
}

// list reads the Images and the ImageStreams, the two listings at the same time.
func (s *Source) list(ctx context.Context) (*prune.References, error) {
	b := prune.NewReferenceBuilder()
	var mu sync.Mutex // the builder is filled from both listings
	var images, streams int
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return s.Client.Images().List(ctx, opts)
		})
		p.PageSize = s.pageSize()
		err := p.EachListItem(gctx, metav1.ListOptions{}, func(obj runtime.Object) error {
			img, ok := obj.(*imagev1.Image)
			if !ok {
				return fmt.Errorf("image list returned a %T: %w", obj, ErrMalformed)
			}
			reduced, err := ReduceImage(img)
			if err != nil {
				return err
			}
			mu.Lock()
			b.AddImage(reduced)
			images++
			mu.Unlock()
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing images: %w", explain(err))
		}
		return nil
	})
	g.Go(func() error {
		p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return s.Client.ImageStreams(metav1.NamespaceAll).List(ctx, opts)
		})
		p.PageSize = s.pageSize()
		err := p.EachListItem(gctx, metav1.ListOptions{}, func(obj runtime.Object) error {
			is, ok := obj.(*imagev1.ImageStream)
			if !ok {
				return fmt.Errorf("image stream list returned a %T: %w", obj, ErrMalformed)
			}
			reduced, err := ReduceStream(is)
			if err != nil {
				return err
			}
			mu.Lock()
			b.AddStream(reduced)
			streams++
			mu.Unlock()
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing image streams: %w", explain(err))
		}
		return nil
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
