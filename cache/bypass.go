package cache

import (
	"context"
	"sync"

	"github.com/distribution/distribution/v3"
	distcache "github.com/distribution/distribution/v3/registry/storage/cache"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Bypassable is a blob descriptor cache that steps aside while Bypass says so (while an
// online prune runs): it answers nothing, so that every Stat goes to storage and sees what the
// prune deleted, and it keeps nothing, so that no answer read during the run outlives it, not
// even one whose Stat was bypassed and whose descriptor comes to be kept after the bypass
// ended (distribution's cached statter keeps what storage answered right after asking it).
// Clear always reaches the cache.
type Bypassable struct {
	distcache.BlobDescriptorCacheProvider
	Bypass func() bool

	// bypassed holds the digests (with their repository, "" for the global cache) whose Stat
	// was bypassed and whose descriptor has not been offered to the cache since.
	bypassed sync.Map
}

// ForgetBypassed drops the record of bypassed Stats: call it once no Stat of a run can still
// be under way.
func (b *Bypassable) ForgetBypassed() { b.bypassed.Clear() }

var _ distcache.BlobDescriptorCacheProvider = (*Bypassable)(nil)

func (b *Bypassable) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	return b.stat(ctx, b.BlobDescriptorCacheProvider, "", dgst)
}

func (b *Bypassable) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	return b.set(ctx, b.BlobDescriptorCacheProvider, "", dgst, desc)
}

// RepositoryScoped is the repository's cache, bypassed as the whole one is.
func (b *Bypassable) RepositoryScoped(repo string) (distribution.BlobDescriptorService, error) {
	svc, err := b.BlobDescriptorCacheProvider.RepositoryScoped(repo)
	if err != nil {
		return nil, err
	}
	return &bypassScoped{BlobDescriptorService: svc, cache: b, repo: repo}, nil
}

type bypassScoped struct {
	distribution.BlobDescriptorService
	cache *Bypassable
	repo  string
}

func (s *bypassScoped) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	return s.cache.stat(ctx, s.BlobDescriptorService, s.repo, dgst)
}

func (s *bypassScoped) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	return s.cache.set(ctx, s.BlobDescriptorService, s.repo, dgst, desc)
}

type bypassKey struct {
	repo string
	dgst digest.Digest
}

// stat misses while bypassed (distribution's cached statter then asks storage), and notes it.
func (b *Bypassable) stat(ctx context.Context, svc distribution.BlobDescriptorService, repo string, dgst digest.Digest) (v1.Descriptor, error) {
	if b.Bypass() {
		b.bypassed.Store(bypassKey{repo, dgst}, true)
		return v1.Descriptor{}, distribution.ErrBlobUnknown
	}
	return svc.Stat(ctx, dgst)
}

// set keeps nothing while bypassed, nor what a bypassed Stat read.
func (b *Bypassable) set(
	ctx context.Context,
	svc distribution.BlobDescriptorService,
	repo string,
	dgst digest.Digest,
	desc v1.Descriptor,
) error {
	if _, bypassed := b.bypassed.LoadAndDelete(bypassKey{repo, dgst}); bypassed || b.Bypass() {
		return nil
	}
	return svc.SetDescriptor(ctx, dgst, desc)
}
