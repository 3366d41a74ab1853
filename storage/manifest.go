package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	_ "github.com/distribution/distribution/v3/manifest/schema2" // registers the schema 2 media type
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardprune/image-registry/prune"
)

// maxManifestSize is the largest manifest read, distribution's own limit on a manifest put: a
// "manifest" digest that names a layer is not read whole into memory.
const maxManifestSize = 4 << 20

var _ prune.ManifestReader = (*Store)(nil)

// ReadManifest reads a manifest blob and parses it by its media type (OCI manifests and
// indexes may omit the field; their shape tells them apart). A blob storage lacks wraps
// prune.ErrManifestNotStored; one that is not a manifest distribution understands (schema 1
// among them), is too large or does not match its digest wraps prune.ErrManifestUnreadable.
func ReadManifest(ctx context.Context, drv driver.StorageDriver, d digest.Digest) (distribution.Manifest, error) {
	unreadable := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), prune.ErrManifestUnreadable)
	}
	r, err := drv.Reader(ctx, BlobDataPath(d), 0)
	var nf driver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("%s: %w", nf.Path, prune.ErrManifestNotStored)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the manifest blob: %w", err)
	}
	defer r.Close()
	content, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the manifest blob: %w", err)
	}
	if len(content) > maxManifestSize {
		return nil, unreadable("larger than %d bytes, so not a manifest", maxManifestSize)
	}
	if d.Algorithm().Available() && d.Algorithm().FromBytes(content) != d {
		return nil, unreadable("the stored blob does not match its digest")
	}
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(content, &probe); err != nil {
		return nil, unreadable("not JSON: %v", err)
	}
	mediaType := probe.MediaType
	if mediaType == "" {
		mediaType = v1.MediaTypeImageManifest
		if probe.Manifests != nil {
			mediaType = v1.MediaTypeImageIndex
		}
	}
	m, _, err := distribution.UnmarshalManifest(mediaType, content)
	if err != nil {
		return nil, unreadable("parsing the %s manifest: %v", mediaType, err)
	}
	return m, nil
}

// ReadManifest reads the manifest d from storage and says what it uses: the children of a
// list or index, the config and layers of an image.
func (s *Store) ReadManifest(ctx context.Context, d digest.Digest) (prune.Image, error) {
	m, err := ReadManifest(ctx, s.Driver, d)
	if err != nil {
		return prune.Image{}, err
	}
	img := prune.Image{Manifest: d}
	switch m.(type) {
	case *manifestlist.DeserializedManifestList, *ocischema.DeserializedImageIndex:
		for _, ref := range m.References() {
			img.Children = append(img.Children, ref.Digest)
		}
	default:
		// Schema 2 and OCI image manifests list their config first, then their layers.
		for i, ref := range m.References() {
			if i == 0 {
				img.Config = ref.Digest
				continue
			}
			img.Layers = append(img.Layers, ref.Digest)
		}
	}
	for _, d := range append(append([]digest.Digest{img.Config}, img.Layers...), img.Children...) {
		if d != "" && d.Validate() != nil {
			return prune.Image{}, fmt.Errorf(
				"manifest %s names %q, not a digest: %w",
				img.Manifest,
				d,
				prune.ErrManifestUnreadable,
			)
		}
	}
	return img, nil
}
