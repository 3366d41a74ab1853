package cache

import (
	"context"

	"github.com/distribution/distribution/v3"
	distcache "github.com/distribution/distribution/v3/registry/storage/cache"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Bypassable is a blob descriptor cache that steps aside while Bypass says so (while an
// online prune runs): it answers nothing, so that every Stat goes to storage and sees what the
// prune deleted, and it keeps nothing, so that no answer read during the run outlives it.
// Clear always reaches the cache.
type Bypassable struct {
	distcache.BlobDescriptorCacheProvider
	Bypass func() bool
}

var _ distcache.BlobDescriptorCacheProvider = (*Bypassable)(nil)

func (b *Bypassable) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	return bypassStat(ctx, b.Bypass, b.BlobDescriptorCacheProvider, dgst)
}

func (b *Bypassable) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	return bypassSet(ctx, b.Bypass, b.BlobDescriptorCacheProvider, dgst, desc)
}

// RepositoryScoped is the repository's cache, bypassed as the whole one is.
func (b *Bypassable) RepositoryScoped(repo string) (distribution.BlobDescriptorService, error) {
	svc, err := b.BlobDescriptorCacheProvider.RepositoryScoped(repo)
	if err != nil {
		return nil, err
	}
	return &bypassScoped{BlobDescriptorService: svc, bypass: b.Bypass}, nil
}

type bypassScoped struct {
	distribution.BlobDescriptorService
	bypass func() bool
}

func (s *bypassScoped) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	return bypassStat(ctx, s.bypass, s.BlobDescriptorService, dgst)
}

func (s *bypassScoped) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	return bypassSet(ctx, s.bypass, s.BlobDescriptorService, dgst, desc)
}

// bypassStat misses while bypassed: distribution's cached statter then asks storage.
func bypassStat(ctx context.Context, bypass func() bool, svc distribution.BlobDescriptorService, dgst digest.Digest) (v1.Descriptor, error) {
	if bypass() {
		return v1.Descriptor{}, distribution.ErrBlobUnknown
	}
	return svc.Stat(ctx, dgst)
}

func bypassSet(
	ctx context.Context,
	bypass func() bool,
	svc distribution.BlobDescriptorService,
	dgst digest.Digest,
	desc v1.Descriptor,
) error {
	if bypass() {
		return nil
	}
	return svc.SetDescriptor(ctx, dgst, desc)
}
