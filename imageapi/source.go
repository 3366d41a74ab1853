package imageapi

import (
	"context"
	"fmt"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
)

// DefaultPageSize is how many objects one list request asks for.
const DefaultPageSize = 500

// maxListAttempts bounds the restarts after an expired continue token.
const maxListAttempts = 3

var (
	_ prune.ReferenceSource = (*Lister)(nil)
	_ prune.ExplainSource   = (*Lister)(nil)
)

// NewClient builds an image API client that speaks JSON: protobuf bodies from some API servers
// do not decode into the image types.
func NewClient(cfg *rest.Config) (imageclient.ImageV1Interface, error) {
	return imageclient.NewForConfig(jsonConfig(cfg))
}

// jsonConfig is a copy of cfg that speaks JSON, for the OpenShift APIs.
func jsonConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/json"
	cfg.AcceptContentTypes = "application/json"
	if cfg.UserAgent == "" {
		cfg.UserAgent = userAgent
	}
	return cfg
}

// protobufConfig is a copy of cfg that asks the Kubernetes APIs for protobuf: pod lists, the
// biggest the ordinary prune reads, decode several times faster than in JSON.
func protobufConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if cfg.UserAgent == "" {
		cfg.UserAgent = userAgent
	}
	return cfg
}

// userAgent names the pruners to the API server (its audit log and metrics).
const userAgent = "dockerregistry-prune"

// References lists every Image and ImageStream, the two listings at the same time, reducing
// each object to its digests as its page arrives.
func (l *Lister) References(ctx context.Context) (*prune.References, error) {
	var (
		b               *prune.ReferenceBuilder
		images, streams int
	)
	err := l.Walk(ctx, Pass{
		Start: func() { b, images, streams = prune.NewReferenceBuilder(), 0, 0 },
		Image: func(_ *imagev1.Image, img prune.Image) error {
			b.AddImage(img)
			images++
			return nil
		},
		Stream: func(is *imagev1.ImageStream, st prune.StreamTags) error {
			logReferenceItems(l.log(), is)
			b.AddStream(st.Stream())
			streams++
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	l.log().WithFields(logrus.Fields{"images": images, "imagestreams": streams}).Debug("listed the image API")
	return b.Build(), nil
}

// pageSize is the page size asked for: n, or DefaultPageSize when n is not positive.
func pageSize(n int64) int64 {
	if n <= 0 {
		return DefaultPageSize
	}
	return n
}

// withRemedy adds what to do to the API errors administrators meet most.
func withRemedy(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf(
			"%w (the pruner's identity needs the cluster role system:image-pruner: oc adm policy add-cluster-role-to-user system:image-pruner -z registry -n openshift-image-registry)",
			err,
		)
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
