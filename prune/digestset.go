package prune

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/opencontainers/go-digest"
)

// digestKey is a digest in 32 bytes: a sha256 digest is its raw hash, rather than a
// 71-character string; a digest of another algorithm (rare) is the sha256 of its string form,
// so that every key has the same fixed size. The pruner keeps millions of these, so the size
// is what bounds its memory.
type digestKey [32]byte

// isRawKey tells whether keyOf(d) is d's raw hash, which digestKey.digest turns back into d.
func isRawKey(d digest.Digest) bool {
	if d.Algorithm() != digest.SHA256 {
		return false
	}
	enc := d.Encoded()
	if len(enc) != 64 {
		return false
	}
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func keyOf(d digest.Digest) digestKey {
	var k digestKey
	if d.Algorithm() == digest.SHA256 {
		if enc := d.Encoded(); len(enc) == 64 {
			if _, err := hex.Decode(k[:], []byte(enc)); err == nil {
				return k
			}
		}
	}
	// The prefix keeps these keys apart from raw sha256 hashes.
	return sha256.Sum256([]byte("digest:" + d.String()))
}

// DigestSet is a set of digests stored compactly. It is a map while it is being filled; a
// frozen set is a sorted slice, 32 bytes a digest, searched by bisection.
type DigestSet struct {
	keys   map[digestKey]struct{}
	frozen []digestKey
}

// NewDigestSet returns an empty set.
func NewDigestSet() *DigestSet {
	return &DigestSet{keys: make(map[digestKey]struct{})}
}

// Add puts d in the set. Empty digests are ignored.
func (s *DigestSet) Add(d digest.Digest) {
	if d != "" {
		s.keys[keyOf(d)] = struct{}{}
	}
}

func (s *DigestSet) addKey(k digestKey) {
	if s.keys == nil {
		panic("prune: adding to a frozen DigestSet")
	}
	s.keys[k] = struct{}{}
}

// freeze turns the set into its sorted-slice form; it takes no more additions.
func (s *DigestSet) freeze() {
	if s.keys == nil {
		return
	}
	s.frozen = make([]digestKey, 0, len(s.keys))
	for k := range s.keys {
		s.frozen = append(s.frozen, k)
	}
	s.keys = nil
	slices.SortFunc(s.frozen, func(a, b digestKey) int { return bytes.Compare(a[:], b[:]) })
}

// frozenSet builds a frozen set from keys, which it sorts and de-duplicates in place.
func frozenSet(keys []digestKey) *DigestSet {
	slices.SortFunc(keys, func(a, b digestKey) int { return bytes.Compare(a[:], b[:]) })
	return &DigestSet{frozen: slices.Clip(slices.Compact(keys))}
}

// Has tells whether d is in the set.
func (s *DigestSet) Has(d digest.Digest) bool {
	if s == nil || d == "" {
		return false
	}
	return s.hasKey(keyOf(d))
}

func (s *DigestSet) hasKey(k digestKey) bool {
	if s.keys == nil {
		_, found := slices.BinarySearchFunc(s.frozen, k, func(a, b digestKey) int { return bytes.Compare(a[:], b[:]) })
		return found
	}
	_, found := s.keys[k]
	return found
}

// Len is the number of digests in the set.
func (s *DigestSet) Len() int {
	if s == nil {
		return 0
	}
	if s.keys == nil {
		return len(s.frozen)
	}
	return len(s.keys)
}
