package imageapi

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/hardprune/image-registry/prune/ordinary"
)

var _ ordinary.Cluster = (*Connection)(nil)

// UpdateStream reads the stream namespace/name afresh, reduces it, calls decide on it and,
// when the plan removes items, writes its status without them and without the tags they leave
// empty. A conflict (the stream changed since the read) starts over from the read, with
// client-go's default retry; decide is then called again on the fresh stream. It returns the
// plan applied, nil when the stream no longer exists. (A dry run decides on the listed
// streams and never calls it.)
func (c *Connection) UpdateStream(
	ctx context.Context,
	namespace, name string,
	decide func(*ordinary.Stream) *ordinary.StreamPlan,
) (*ordinary.StreamPlan, error) {
	streams := c.Client.ImageStreams(namespace)
	var plan *ordinary.StreamPlan
	// The failure of the last attempt, said with what failed; the error returned to
	// RetryOnConflict stays the API's, which it inspects.
	var failed error
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		plan, failed = nil, nil
		is, err := streams.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			what := fmt.Sprintf("reading image stream %s/%s", namespace, name)
			failed = requestError(err, what, "get", "imagestreams", namespace, false)
			return err
		}
		stream, err := ReduceOrdinaryStream(is)
		if err != nil {
			failed = err
			return err
		}
		p := decide(&stream)
		if p == nil || p.Removed == 0 {
			plan = p
			return nil
		}
		if err := removeFromStatus(is, p); err != nil {
			failed = err
			return err
		}
		_, err = streams.UpdateStatus(ctx, is, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			what := fmt.Sprintf("updating the status of image stream %s/%s", namespace, name)
			failed = requestError(err, what, "update", "imagestreams/status", namespace, false)
			return err
		}
		plan = p
		return nil
	})
	if err != nil {
		if failed == nil || apierrors.IsConflict(err) {
			// Conflicts until the retries ran out.
			return nil, fmt.Errorf("updating the status of image stream %s/%s: %w", namespace, name, err)
		}
		return nil, failed
	}
	return plan, nil
}

// removeFromStatus removes from the stream's status.tags the items the plan removes, found by
// tag and position, and then the plan's empty tags that have no item left (an item the plan
// does not see, a reference tag's, keeps its tag). The plan was made from this very object: an
// item it names that is not there is a fault of the plan, said, and nothing is written.
func removeFromStatus(is *imagev1.ImageStream, plan *ordinary.StreamPlan) error {
	repo := is.Namespace + "/" + is.Name
	remove := map[string]map[int]digest.Digest{}
	for _, d := range plan.Items {
		if !d.Remove {
			continue
		}
		if remove[d.Tag] == nil {
			remove[d.Tag] = map[int]digest.Digest{}
		}
		remove[d.Tag][d.Item.Raw] = d.Item.Image
	}
	empty := map[string]bool{}
	for _, t := range plan.EmptyTags {
		empty[t] = true
	}
	removed := 0
	tags := make([]imagev1.NamedTagEventList, 0, len(is.Status.Tags))
	for _, tag := range is.Status.Tags {
		gone := remove[tag.Tag]
		delete(remove, tag.Tag)
		if len(gone) > 0 {
			items := make([]imagev1.TagEvent, 0, len(tag.Items))
			for i, item := range tag.Items {
				d, ok := gone[i]
				if !ok {
					items = append(items, item)
					continue
				}
				if item.Image != d.String() {
					return fmt.Errorf(
						"image stream %s tag %q: the plan removes item %d as %s, but it is %q",
						repo,
						tag.Tag,
						i,
						d,
						item.Image,
					)
				}
				delete(gone, i)
				removed++
			}
			for i := range gone {
				return fmt.Errorf("image stream %s tag %q: the plan removes item %d, which it does not have", repo, tag.Tag, i)
			}
			tag.Items = items
		}
		if len(tag.Items) == 0 && empty[tag.Tag] {
			continue
		}
		tags = append(tags, tag)
	}
	for t := range remove {
		return fmt.Errorf("image stream %s: the plan removes items of tag %q, which it does not have", repo, t)
	}
	if removed != plan.Removed {
		return fmt.Errorf("image stream %s: the plan counts %d items removed but names %d", repo, plan.Removed, removed)
	}
	is.Status.Tags = tags
	return nil
}

// DeleteImage deletes the Image named d at once (grace period 0); one already gone is not an
// error.
func (c *Connection) DeleteImage(ctx context.Context, d digest.Digest) error {
	err := c.Client.Images().Delete(ctx, d.String(), *metav1.NewDeleteOptions(0))
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return requestError(err, "deleting image "+d.String(), "delete", "images", "", true)
}
