package storage

import (
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/distribution/reference"
)

// ErrBadRepositoryName says a directory under the repositories root is not a name the
// registry accepts, so it cannot have written it.
var ErrBadRepositoryName = errors.New("invalid repository name")

var anchoredTag = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)

// ValidateRepositoryName checks a repository name against the distribution grammar. Names
// already found valid are remembered: a walk meets each repository once per file in it, and
// the grammar is a regular expression.
func ValidateRepositoryName(name string) error {
	if _, ok := validNames.Load(name); ok {
		return nil
	}
	if _, err := reference.WithName(name); err != nil {
		return fmt.Errorf("%q: %w", name, ErrBadRepositoryName)
	}
	validNames.Store(name, struct{}{})
	return nil
}

// validNames holds the repository names that passed validation (a name's validity never
// changes, so the cache needs no invalidation; it grows with the repositories walked).
var validNames sync.Map

func validTag(tag string) bool {
	return anchoredTag.MatchString(tag)
}
