package prune

import (
	"encoding/hex"

	"github.com/opencontainers/go-digest"
)

// DigestSet is a set of digests stored compactly: a sha256 digest takes its 32 raw bytes
// rather than a 71-character string, which matters when the image API names millions.
// Other algorithms (rare) fall back to their string form.
type DigestSet struct {
	sha256 map[[32]byte]struct{}
	other  map[digest.Digest]struct{}
}

// NewDigestSet returns an empty set.
func NewDigestSet() *DigestSet {
	return &DigestSet{sha256: make(map[[32]byte]struct{})}
}

func sha256Key(d digest.Digest) ([32]byte, bool) {
	var key [32]byte
	if d.Algorithm() != digest.SHA256 {
		return key, false
	}
	enc := d.Encoded()
	if len(enc) != 64 {
		return key, false
	}
	if _, err := hex.Decode(key[:], []byte(enc)); err != nil {
		return key, false
	}
	return key, true
}

// Add puts d in the set. Empty digests are ignored.
func (s *DigestSet) Add(d digest.Digest) {
	if d == "" {
		return
	}
	if key, ok := sha256Key(d); ok {
		s.sha256[key] = struct{}{}
		return
	}
	if s.other == nil {
		s.other = make(map[digest.Digest]struct{})
	}
	s.other[d] = struct{}{}
}

// Has tells whether d is in the set.
func (s *DigestSet) Has(d digest.Digest) bool {
	if s == nil {
		return false
	}
	if key, ok := sha256Key(d); ok {
		_, found := s.sha256[key]
		return found
	}
	_, found := s.other[d]
	return found
}

// Len is the number of digests in the set.
func (s *DigestSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.sha256) + len(s.other)
}
