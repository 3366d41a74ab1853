// Package testfixture writes real registry storage for tests, through distribution's own
// storage code, so that the layout the pruner reads is exactly the one the registry writes.
package testfixture

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardprune/image-registry/prune"
)

// Registry pushes content into storage.
type Registry struct {
	t   testing.TB
	ctx context.Context
	ns  distribution.Namespace
}

// New wraps a storage driver.
func New(t testing.TB, d driver.StorageDriver) *Registry {
	t.Helper()
	ctx := context.Background()
	ns, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		t.Fatalf("creating the registry: %v", err)
	}
	return &Registry{t: t, ctx: ctx, ns: ns}
}

func (r *Registry) repo(name string) distribution.Repository {
	r.t.Helper()
	named, err := reference.WithName(name)
	if err != nil {
		r.t.Fatalf("repository name %q: %v", name, err)
	}
	repo, err := r.ns.Repository(r.ctx, named)
	if err != nil {
		r.t.Fatalf("repository %q: %v", name, err)
	}
	return repo
}

// Blob pushes a blob into a repository (a layer link plus the blob) and returns its descriptor.
func (r *Registry) Blob(repoName string, content []byte, mediaType string) v1.Descriptor {
	r.t.Helper()
	desc, err := r.repo(repoName).Blobs(r.ctx).Put(r.ctx, mediaType, content)
	if err != nil {
		r.t.Fatalf("pushing a blob to %s: %v", repoName, err)
	}
	return desc
}

// Image pushes a schema 2 image with a config and the given layer contents, tags it if tag is
// not empty, and returns what an Image object of it would hold. Equal contents give equal
// digests, so layers can be shared across images and repositories.
func (r *Registry) Image(repoName, tag, configContent string, layerContents ...string) prune.Image {
	r.t.Helper()
	cfg := r.Blob(repoName, configJSON(configContent), schema2.MediaTypeImageConfig)
	m := schema2.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: schema2.MediaTypeManifest,
		Config:    cfg,
	}
	img := prune.Image{Config: cfg.Digest}
	for _, l := range layerContents {
		desc := r.Blob(repoName, []byte(l), schema2.MediaTypeLayer)
		m.Layers = append(m.Layers, desc)
		img.Layers = append(img.Layers, desc.Digest)
	}
	dm, err := schema2.FromStruct(m)
	if err != nil {
		r.t.Fatalf("building a manifest: %v", err)
	}
	img.Manifest = r.putManifest(repoName, tag, dm)
	return img
}

// Index pushes an OCI index of images (or indexes) already in the repository.
func (r *Registry) Index(repoName, tag string, children ...prune.Image) prune.Image {
	r.t.Helper()
	var descs []v1.Descriptor
	img := prune.Image{}
	for _, c := range children {
		content, err := r.ManifestBytes(repoName, c.Manifest)
		if err != nil {
			r.t.Fatalf("reading child %s: %v", c.Manifest, err)
		}
		mediaType := schema2.MediaTypeManifest
		if len(c.Children) > 0 { // an index of indexes
			mediaType = v1.MediaTypeImageIndex
		}
		descs = append(descs, v1.Descriptor{
			MediaType: mediaType, Digest: c.Manifest, Size: int64(len(content)),
			Platform: &v1.Platform{Architecture: fmt.Sprintf("arch%d", len(descs)), OS: "linux"},
		})
		img.Children = append(img.Children, c.Manifest)
	}
	idx, err := ocischema.FromDescriptors(descs, nil)
	if err != nil {
		r.t.Fatalf("building an index: %v", err)
	}
	img.Manifest = r.putManifest(repoName, tag, idx)
	return img
}

func (r *Registry) putManifest(repoName, tag string, m distribution.Manifest) digest.Digest {
	r.t.Helper()
	repo := r.repo(repoName)
	ms, err := repo.Manifests(r.ctx)
	if err != nil {
		r.t.Fatalf("manifest service: %v", err)
	}
	var opts []distribution.ManifestServiceOption
	if tag != "" {
		opts = append(opts, distribution.WithTag(tag))
	}
	dgst, err := ms.Put(r.ctx, m, opts...)
	if err != nil {
		r.t.Fatalf("pushing a manifest to %s: %v", repoName, err)
	}
	if tag != "" {
		r.Tag(repoName, tag, dgst)
	}
	return dgst
}

// Tag points a tag at a manifest already in the repository.
func (r *Registry) Tag(repoName, tag string, dgst digest.Digest) {
	r.t.Helper()
	if err := r.repo(repoName).Tags(r.ctx).Tag(r.ctx, tag, v1.Descriptor{Digest: dgst}); err != nil {
		r.t.Fatalf("tagging %s:%s: %v", repoName, tag, err)
	}
}

// ManifestBytes reads a manifest through the repository, as a pull would.
func (r *Registry) ManifestBytes(repoName string, dgst digest.Digest) ([]byte, error) {
	ms, err := r.repo(repoName).Manifests(r.ctx)
	if err != nil {
		return nil, err
	}
	m, err := ms.Get(r.ctx, dgst)
	if err != nil {
		return nil, err
	}
	_, payload, err := m.Payload()
	return payload, err
}

// Pull reads an image through the repository the way a client would: the manifest, then
// every blob, each checked against its digest.
func (r *Registry) Pull(repoName string, img prune.Image) error {
	if _, err := r.ManifestBytes(repoName, img.Manifest); err != nil {
		return fmt.Errorf("manifest %s@%s: %w", repoName, img.Manifest, err)
	}
	for _, c := range img.Children {
		if _, err := r.ManifestBytes(repoName, c); err != nil {
			return fmt.Errorf("child manifest %s@%s: %w", repoName, c, err)
		}
	}
	blobs := r.repo(repoName).Blobs(r.ctx)
	want := append([]digest.Digest(nil), img.Layers...)
	if img.Config != "" {
		want = append(want, img.Config)
	}
	for _, d := range want {
		content, err := blobs.Get(r.ctx, d)
		if err != nil {
			return fmt.Errorf("blob %s@%s: %w", repoName, d, err)
		}
		if digest.FromBytes(content) != d {
			return fmt.Errorf("blob %s@%s: content does not match its digest", repoName, d)
		}
	}
	return nil
}

// TagHistory is a convenience for streams: the images' manifests, newest first.
func TagHistory(imgs ...prune.Image) []digest.Digest {
	var out []digest.Digest
	for _, i := range imgs {
		out = append(out, i.Manifest)
	}
	return out
}

func configJSON(s string) []byte {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).
		Encode(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{"Labels": map[string]string{"name": s}}})
	return buf.Bytes()
}
