package storage

import (
	"sync"

	"github.com/opencontainers/go-digest"
)

// interner shares one string among the equal digests a walk meets: a blob's digest appears
// again in every link to it, across repositories, and an inventory of millions of files keeps
// them all. Safe for the walk's goroutines; sharded so that they rarely wait for each other.
type interner struct {
	shards [64]struct {
		mu sync.Mutex
		m  map[digest.Digest]digest.Digest
	}
}

func (in *interner) intern(d digest.Digest) digest.Digest {
	s := string(d)
	// The last hex digit picks the shard: uniformly spread, and cheap.
	sh := &in.shards[s[len(s)-1]%64]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if v, ok := sh.m[d]; ok {
		return v
	}
	if sh.m == nil {
		sh.m = make(map[digest.Digest]digest.Digest)
	}
	sh.m[d] = d
	return d
}
