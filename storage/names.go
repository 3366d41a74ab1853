package storage

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/distribution/reference"
)

// ErrBadRepositoryName says a directory under the repositories root is not a name the
// registry accepts, so it cannot have written it.
var ErrBadRepositoryName = errors.New("invalid repository name")

var anchoredTag = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)

// ValidateRepositoryName checks a repository name against the distribution grammar.
func ValidateRepositoryName(name string) error {
	if _, err := reference.WithName(name); err != nil {
		return fmt.Errorf("%q: %w", name, ErrBadRepositoryName)
	}
	return nil
}

func validTag(tag string) bool {
	return anchoredTag.MatchString(tag)
}
