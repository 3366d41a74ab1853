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
	"k8s.io/client-go/tools/pager"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/hardprune/image-registry/prune"
)

// Lister reads the Images and ImageStreams page by page: the references of the prune, and for
// the maintenance modes more of them than the prune's digests (the tag positions of
// -prune-explain, the references and annotations of -restore).
type Lister struct {
	Client   imageclient.ImageV1Interface
	PageSize int64
	Log      logrus.FieldLogger
}

func (l *Lister) log() logrus.FieldLogger {
	if l.Log == nil {
		return logrus.StandardLogger()
	}
	return l.Log
}

// EachImage calls fn for every Image, one page in memory at a time.
func (l *Lister) EachImage(ctx context.Context, fn func(*imagev1.Image) error) error {
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return l.Client.Images().List(ctx, opts)
	})
	p.PageSize = pageSize(l.PageSize)
	err := p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		img, ok := obj.(*imagev1.Image)
		if !ok {
			return fmt.Errorf("image list returned a %T: %w", obj, ErrMalformed)
		}
		return fn(img)
	})
	if err != nil {
		return fmt.Errorf("listing images: %w", withRemedy(err))
	}
	return nil
}

// EachImageStream calls fn for every ImageStream of every namespace.
func (l *Lister) EachImageStream(ctx context.Context, fn func(*imagev1.ImageStream) error) error {
	return l.EachImageStreamIn(ctx, metav1.NamespaceAll, fn)
}

// EachImageStreamIn calls fn for every ImageStream of namespace (of every namespace when
// empty), one page in memory at a time.
func (l *Lister) EachImageStreamIn(ctx context.Context, namespace string, fn func(*imagev1.ImageStream) error) error {
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return l.Client.ImageStreams(namespace).List(ctx, opts)
	})
	p.PageSize = pageSize(l.PageSize)
	err := p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		is, ok := obj.(*imagev1.ImageStream)
		if !ok {
			return fmt.Errorf("image stream list returned a %T: %w", obj, ErrMalformed)
		}
		return fn(is)
	})
	if err != nil {
		if namespace != metav1.NamespaceAll {
			return fmt.Errorf("listing image streams in namespace %s: %w", namespace, withRemedy(err))
		}
		return fmt.Errorf("listing image streams: %w", withRemedy(err))
	}
	return nil
}

// Pass is one listing of every Image and every ImageStream, each handed over with its
// reduction as its page arrives. Image and Stream are never called at the same time.
type Pass struct {
	// Start is called before each attempt, to start from fresh state: a listing whose continue
	// token the API server expired mid-way starts over, and a partial listing is never used.
	Start  func()
	Image  func(*imagev1.Image, prune.Image) error
	Stream func(*imagev1.ImageStream, prune.StreamTags) error
	// ImagesFirst hands over every Image before the first ImageStream, for passes that need
	// them so; otherwise the two are listed at the same time, and the pass takes as long as
	// the longer listing, not the sum of both.
	ImagesFirst bool
}

// Walk runs p over the image API, starting over (up to 3 attempts in all) when the API server
// expires its continue token.
func (l *Lister) Walk(ctx context.Context, p Pass) error {
	var lastErr error
	for attempt := 1; attempt <= maxListAttempts; attempt++ {
		p.Start()
		err := l.walkOnce(ctx, p)
		if err == nil {
			return nil
		}
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			return err
		}
		lastErr = err
		l.log().
			WithError(err).
			Warnf("the list expired mid-way; starting over (attempt %d of %d)", attempt+1, maxListAttempts)
	}
	return fmt.Errorf("listing kept expiring after %d attempts: %w", maxListAttempts, lastErr)
}

// walkOnce is one attempt of Walk.
func (l *Lister) walkOnce(ctx context.Context, p Pass) error {
	var mu sync.Mutex // the pass is fed from both listings
	images := func(ctx context.Context) error {
		return l.EachImage(ctx, func(img *imagev1.Image) error {
			reduced, err := ReduceImage(img)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			return p.Image(img, reduced)
		})
	}
	streams := func(ctx context.Context) error {
		return l.EachImageStream(ctx, func(is *imagev1.ImageStream) error {
			tags, err := TagHistories(is)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			return p.Stream(is, tags)
		})
	}
	if p.ImagesFirst {
		if err := images(ctx); err != nil {
			return err
		}
		return streams(ctx)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return images(gctx) })
	g.Go(func() error { return streams(gctx) })
	return g.Wait()
}

// TagHistories reduces an ImageStream to its repository and, tag by tag, the manifests of its
// history, newest first, keeping the positions that ReduceStream forgets.
func TagHistories(is *imagev1.ImageStream) (prune.StreamTags, error) {
	out := prune.StreamTags{Repository: is.Namespace + "/" + is.Name}
	for _, tag := range is.Status.Tags {
		th := prune.TagHistory{Tag: tag.Tag}
		for i, item := range tag.Items {
			if item.Image == "" {
				// A reference tag (spec.tags[].reference: true) records only a
				// dockerImageReference to another registry: it names nothing stored here.
				continue
			}
			d, err := parseDigest(item.Image)
			if err != nil {
				return prune.StreamTags{}, fmt.Errorf(
					"image stream %s tag %q item %d: image %q is not a digest: %w",
					out.Repository,
					tag.Tag,
					i,
					item.Image,
					ErrMalformed,
				)
			}
			th.Items = append(th.Items, prune.TagItem{Image: d, Reference: item.DockerImageReference})
		}
		out.Tags = append(out.Tags, th)
	}
	return out, nil
}
