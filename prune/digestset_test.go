package prune

import (
	_ "crypto/sha512" // registers sha512 for go-digest
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestDigestSet(t *testing.T) {
	sha := digest.FromString("x")
	sha512 := digest.SHA512.FromString("x")
	other := digest.Digest("sha256:" + "ab")
	s := NewDigestSet()
	for _, d := range []digest.Digest{sha, sha512, sha, ""} {
		s.Add(d)
	}
	check := func(state string) {
		t.Helper()
		if !s.Has(sha) || !s.Has(sha512) {
			t.Errorf("%s: members missing", state)
		}
		if s.Has(digest.FromString("y")) || s.Has("") || s.Has(other) || s.Has(digest.SHA512.FromString("y")) {
			t.Errorf("%s: has a digest never added", state)
		}
		if s.Len() != 2 {
			t.Errorf("%s: Len = %d, want 2", state, s.Len())
		}
	}
	check("map")
	s.freeze()
	check("frozen")
	defer func() {
		if recover() == nil {
			t.Error("adding to a frozen set did not panic")
		}
	}()
	s.Add(other)
}

func TestFrozenSetDeduplicates(t *testing.T) {
	a, b := keyOf(digest.FromString("a")), keyOf(digest.FromString("b"))
	s := frozenSet([]digestKey{b, a, b, a, a})
	if s.Len() != 2 || !s.hasKey(a) || !s.hasKey(b) {
		t.Errorf("got %d keys", s.Len())
	}
	var nilSet *DigestSet
	if nilSet.Has(digest.FromString("a")) || nilSet.Len() != 0 {
		t.Error("a nil set is empty")
	}
}
