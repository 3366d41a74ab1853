// Package imageapi reads Images and ImageStreams from the cluster's image API
// (image.openshift.io/v1) page by page and reduces each object at once to the digests the
// pruner needs.
package imageapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"unique"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"

	"github.com/hardprune/image-registry/prune"
)

// ErrMalformed says an object from the image API cannot be understood. The prune stops: an
// Image whose layers we cannot read could be keeping blobs alive.
var ErrMalformed = errors.New("malformed object")

// Media types whose image metadata Id is the config blob's digest.
var configMediaTypes = map[string]bool{
	"application/vnd.docker.distribution.manifest.v2+json": true,
	"application/vnd.oci.image.manifest.v1+json":           true,
}

// Media types of manifest lists and OCI indexes, whose Images name their children.
var listMediaTypes = map[string]bool{
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
	"application/vnd.oci.image.index.v1+json":                   true,
}

// ReduceImage keeps the digests of an Image: its manifest, config, layers and children.
func ReduceImage(img *imagev1.Image) (prune.Image, error) {
	out, _, err := reduceImage(img)
	return out, err
}

// reduceImage is ReduceImage that also returns what it read of dockerImageMetadata, which is
// parsed once.
func reduceImage(img *imagev1.Image) (prune.Image, dockerMetadata, error) {
	bad := func(format string, args ...any) (prune.Image, dockerMetadata, error) {
		return prune.Image{}, dockerMetadata{}, fmt.Errorf(
			"image %q: %s: %w", img.Name, fmt.Sprintf(format, args...), ErrMalformed)
	}
	manifest, err := parseDigest(img.Name)
	if err != nil {
		return bad("the name is not a digest")
	}
	out := prune.Image{Manifest: manifest}
	if len(img.DockerImageLayers) > 0 {
		out.Layers = make([]digest.Digest, 0, len(img.DockerImageLayers))
	}
	for i, l := range img.DockerImageLayers {
		d, err := parseDigest(l.Name)
		if err != nil {
			return bad("layer %d %q is not a digest", i, l.Name)
		}
		out.Layers = append(out.Layers, d)
	}
	if len(img.DockerImageManifests) > 0 {
		out.Children = make([]digest.Digest, 0, len(img.DockerImageManifests))
	}
	for i, m := range img.DockerImageManifests {
		d, err := parseDigest(m.Digest)
		if err != nil {
			return bad("manifest %d %q is not a digest", i, m.Digest)
		}
		out.Children = append(out.Children, d)
	}
	meta, err := readDockerMetadata(img)
	if err != nil {
		return bad("%v", err)
	}
	config, err := configDigest(img, meta)
	if err != nil {
		return bad("%v", err)
	}
	out.Config = config
	// A schema 2 or OCI manifest has a config blob; an Image that does not name it leaves a
	// blob its manifest needs unknown.
	out.Incomplete = config == "" && configMediaTypes[img.DockerImageManifestMediaType] ||
		// A list recorded without its children (before the API had the field) uses what
		// storage alone can say.
		len(out.Children) == 0 && listMediaTypes[img.DockerImageManifestMediaType]
	return out, meta, nil
}

// parseDigest is digest.Parse whose result is interned (unique.Make): the reduced objects of a
// listing keep each digest once, however many Images share a layer, and however many history
// items and manifest lists name a manifest. The decoded object's own string is left to the
// garbage collector with the rest of its page.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", err
	}
	return digest.Digest(unique.Make(string(d)).Value()), nil
}

// dockerMetadata is what the pruners read of an Image's dockerImageMetadata.
type dockerMetadata struct {
	ID string `json:"Id"`
	// Size is the image's size as the API recorded it, which the ordinary prune compares
	// with the namespace's limit. It is kept raw: the hard prune does not need it and so does
	// not fail on it (see imageSize).
	Size json.RawMessage `json:"Size"`
}

// readDockerMetadata parses dockerImageMetadata; an Image without it has none of it.
func readDockerMetadata(img *imagev1.Image) (dockerMetadata, error) {
	var meta dockerMetadata
	raw := img.DockerImageMetadata.Raw
	if len(raw) == 0 {
		return meta, nil
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return dockerMetadata{}, fmt.Errorf("dockerImageMetadata does not parse: %v", err)
	}
	return meta, nil
}

// configDigest reads the config blob's digest from dockerImageMetadata.Id. Schema 1 images have
// no config blob, and their Id is not a digest, so it is read only for schema 2 and OCI.
func configDigest(img *imagev1.Image, meta dockerMetadata) (digest.Digest, error) {
	if meta.ID == "" {
		return "", nil
	}
	d, err := digest.Parse(meta.ID)
	if err != nil {
		if configMediaTypes[img.DockerImageManifestMediaType] {
			return "", fmt.Errorf("dockerImageMetadata.Id %q is not a digest", meta.ID)
		}
		return "", nil
	}
	return d, nil
}

// ReduceStream keeps the repository of an ImageStream and the manifests of its tag histories.
func ReduceStream(is *imagev1.ImageStream) (prune.Stream, error) {
	tags, err := TagHistories(is)
	if err != nil {
		return prune.Stream{}, err
	}
	return tags.Stream(), nil
}
