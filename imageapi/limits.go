package imageapi

import (
	"context"
	"fmt"

	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"

	"github.com/hardprune/image-registry/prune/ordinary"
)

// Limits lists the LimitRanges of namespace (of all namespaces when empty) page by page and
// keeps, per namespace, the smallest max storage of their openshift.io/Image limits: the size
// above which -prune-over-size-limit removes an image. A listing whose continue token expired
// starts over, up to 3 attempts in all.
func (c *Connection) Limits(ctx context.Context, namespace string) (ordinary.Limits, error) {
	var err error
	for attempt := 1; attempt <= maxListAttempts; attempt++ {
		var limits ordinary.Limits
		if limits, err = c.limitsOnce(ctx, namespace); err == nil {
			return limits, nil
		}
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			return nil, err
		}
		c.log().
			WithError(err).
			Warnf("the limit range list expired mid-way; starting over (attempt %d of %d)", attempt+1, maxListAttempts)
	}
	return nil, fmt.Errorf("listing limit ranges kept expiring after %d attempts: %w", maxListAttempts, err)
}

// limitsOnce is one attempt of Limits.
func (c *Connection) limitsOnce(ctx context.Context, namespace string) (ordinary.Limits, error) {
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return c.Kube.CoreV1().LimitRanges(namespace).List(ctx, opts)
	})
	p.PageSize = pageSize(c.PageSize)
	p.PageBufferSize = referrerPageBuffer
	limits := ordinary.Limits{}
	err := p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		lr, ok := obj.(*corev1.LimitRange)
		if !ok {
			return fmt.Errorf("the limitranges list returned a %T: %w", obj, ErrMalformed)
		}
		addImageLimits(limits, lr)
		return nil
	})
	if err != nil {
		return nil, requestError(err, "listing limitranges", "list", "limitranges", namespace, false)
	}
	return limits, nil
}

// addImageLimits lowers the limit of lr's namespace to the max storage of each of its
// openshift.io/Image limits; other types, and limits without a max storage, bound nothing.
func addImageLimits(limits ordinary.Limits, lr *corev1.LimitRange) {
	for _, item := range lr.Spec.Limits {
		if item.Type != imagev1.LimitTypeImage {
			continue
		}
		q, ok := item.Max[corev1.ResourceStorage]
		if !ok {
			continue
		}
		bytes := q.Value()
		if current, seen := limits[lr.Namespace]; !seen || bytes < current {
			limits[lr.Namespace] = bytes
		}
	}
}
