package cache

import (
	"context"
	"sync/atomic"

	"github.com/distribution/distribution/v3"
	distcache "github.com/distribution/distribution/v3/registry/storage/cache"
	"github.com/distribution/distribution/v3/registry/storage/cache/memory"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ResettableMemory is distribution's in-memory blob descriptor cache that can be dropped as a
// whole while the registry serves: Reset replaces it with an empty one. Every call, including
// those of repository-scoped services handed out before a Reset, goes to the cache current at
// the time of the call, so no request reads a descriptor cached before the last Reset.
type ResettableMemory struct {
	size int
	cur  atomic.Pointer[generation]
}

// generation is one cache between two resets.
type generation struct {
	distcache.BlobDescriptorCacheProvider
}

var _ distcache.BlobDescriptorCacheProvider = (*ResettableMemory)(nil)

// NewResettableMemory returns an empty cache of at most size descriptors (distribution's
// storage.cache.blobdescriptorsize; 0 or less means memory.DefaultSize).
func NewResettableMemory(size int) *ResettableMemory {
	if size <= 0 {
		size = memory.DefaultSize
	}
	r := &ResettableMemory{size: size}
	r.Reset()
	return r
}

// Reset drops every cached descriptor.
func (r *ResettableMemory) Reset() {
	r.cur.Store(&generation{memory.NewInMemoryBlobDescriptorCacheProvider(r.size)})
}

func (r *ResettableMemory) current() *generation { return r.cur.Load() }

func (r *ResettableMemory) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	return r.current().Stat(ctx, dgst)
}

func (r *ResettableMemory) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	return r.current().SetDescriptor(ctx, dgst, desc)
}

func (r *ResettableMemory) Clear(ctx context.Context, dgst digest.Digest) error {
	return r.current().Clear(ctx, dgst)
}

// RepositoryScoped validates the name as distribution's cache does and returns a service that
// follows resets.
func (r *ResettableMemory) RepositoryScoped(repo string) (distribution.BlobDescriptorService, error) {
	gen := r.current()
	svc, err := gen.RepositoryScoped(repo)
	if err != nil {
		return nil, err
	}
	s := &scoped{parent: r, repo: repo}
	s.cur.Store(&scopedGeneration{gen: gen, svc: svc})
	return s, nil
}

// scoped is a repository-scoped service bound to the generation current at each call.
type scoped struct {
	parent *ResettableMemory
	repo   string
	cur    atomic.Pointer[scopedGeneration]
}

type scopedGeneration struct {
	gen *generation
	svc distribution.BlobDescriptorService
}

func (s *scoped) service() (distribution.BlobDescriptorService, error) {
	gen := s.parent.current()
	if sg := s.cur.Load(); sg.gen == gen {
		return sg.svc, nil
	}
	svc, err := gen.RepositoryScoped(s.repo)
	if err != nil {
		return nil, err
	}
	s.cur.Store(&scopedGeneration{gen: gen, svc: svc})
	return svc, nil
}

func (s *scoped) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	svc, err := s.service()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return svc.Stat(ctx, dgst)
}

func (s *scoped) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	svc, err := s.service()
	if err != nil {
		return err
	}
	return svc.SetDescriptor(ctx, dgst, desc)
}

func (s *scoped) Clear(ctx context.Context, dgst digest.Digest) error {
	svc, err := s.service()
	if err != nil {
		return err
	}
	return svc.Clear(ctx, dgst)
}
