package imageapi

import (
	"context"
	"encoding/json"
	"fmt"

	imagev1 "github.com/openshift/api/image/v1"

	"github.com/hardprune/image-registry/prune/ordinary"
)

// EachOrdinaryImage calls fn for every Image (they are cluster-scoped: always all of them),
// reduced for the ordinary prune as its page arrives. A malformed Image stops the listing with
// an error naming it: the caller then deletes nothing. A listing whose continue token expired
// returns an error for which apierrors.IsResourceExpired holds; the caller starts over.
func (l *Lister) EachOrdinaryImage(ctx context.Context, fn func(ordinary.Image) error) error {
	return l.EachImage(ctx, func(img *imagev1.Image) error {
		reduced, err := ReduceOrdinaryImage(img)
		if err != nil {
			return err
		}
		return fn(reduced)
	})
}

// EachOrdinaryStream calls fn for every ImageStream of namespace (of all namespaces when
// empty), reduced for the ordinary prune as its page arrives; errors as EachOrdinaryImage.
func (l *Lister) EachOrdinaryStream(ctx context.Context, namespace string, fn func(ordinary.Stream) error) error {
	return l.EachImageStreamIn(ctx, namespace, func(is *imagev1.ImageStream) error {
		logReferenceItems(l.log(), is)
		reduced, err := ReduceOrdinaryStream(is)
		if err != nil {
			return err
		}
		return fn(reduced)
	})
}

// ReduceOrdinaryImage keeps what the ordinary prune decides an Image's fate by: its digests
// (see ReduceImage), its age, whether it was pushed to this registry, and its size.
func ReduceOrdinaryImage(img *imagev1.Image) (ordinary.Image, error) {
	reduced, meta, err := reduceImage(img)
	if err != nil {
		return ordinary.Image{}, err
	}
	size, err := imageSize(meta)
	if err != nil {
		return ordinary.Image{}, fmt.Errorf("image %q: %v: %w", img.Name, err, ErrMalformed)
	}
	return ordinary.Image{
		Image:   reduced,
		Created: img.CreationTimestamp.Time,
		// Only the annotation, as oc's --all=false reads it: an Image without it is treated
		// as imported, whatever its reference says.
		Managed: img.Annotations[ManagedAnnotation] == "true",
		Size:    size,
	}, nil
}

// imageSize reads dockerImageMetadata.Size: absent is 0 (such an Image never exceeds a limit,
// as in oc); anything but a whole number of bytes is malformed.
func imageSize(meta dockerMetadata) (int64, error) {
	if len(meta.Size) == 0 || string(meta.Size) == "null" {
		return 0, nil
	}
	var size int64
	if err := json.Unmarshal(meta.Size, &size); err != nil || size < 0 {
		return 0, fmt.Errorf("dockerImageMetadata.Size %s is not a size in bytes", meta.Size)
	}
	return size, nil
}

// ReduceOrdinaryStream keeps what the ordinary prune decides a stream's history by: its
// identity, age and version, and every tag's history items with their positions in the
// object, for the update that removes them. Items without an image (reference tags) name
// nothing stored here and are left out: the prune never removes them.
func ReduceOrdinaryStream(is *imagev1.ImageStream) (ordinary.Stream, error) {
	out := ordinary.Stream{
		Namespace:       is.Namespace,
		Name:            is.Name,
		Created:         is.CreationTimestamp.Time,
		ResourceVersion: is.ResourceVersion,
		Tags:            make([]ordinary.Tag, 0, len(is.Status.Tags)),
	}
	for _, tag := range is.Status.Tags {
		t := ordinary.Tag{Name: tag.Tag, Items: make([]ordinary.Item, 0, len(tag.Items))}
		for i, item := range tag.Items {
			if item.Image == "" {
				continue
			}
			d, err := parseDigest(item.Image)
			if err != nil {
				return ordinary.Stream{}, fmt.Errorf(
					"image stream %s tag %q item %d: image %q is not a digest: %w",
					out.Repository(),
					tag.Tag,
					i,
					item.Image,
					ErrMalformed,
				)
			}
			t.Items = append(t.Items, ordinary.Item{Image: d, Created: item.Created.Time, Raw: i})
		}
		out.Tags = append(out.Tags, t)
	}
	return out, nil
}
