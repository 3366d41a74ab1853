package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// TagsNaming finds the tags of repo that name the manifest d: current are those whose current
// link points at it (distribution's tag lookup), indexed those that point elsewhere but hold it
// in their index, a place the tag once pointed at. Both are sorted. A repository without tags
// has none of either.
//
// Each current link is read: the index does not say which of its entries is current. That is
// one read per tag of the repository, as distribution's own lookup makes.
func (s *Store) TagsNaming(ctx context.Context, repo string, d digest.Digest) (current, indexed []string, err error) {
	var tags []string
	inIndex := map[string]bool{}
	_, err = s.walkEntries(ctx, TagsPath(repo), func(e Entry) error {
		switch {
		case e.Repository != repo:
		case e.Kind == KindTagCurrentLink:
			tags = append(tags, e.Tag)
		case e.Kind == KindTagIndexLink && e.Digest == d:
			inIndex[e.Tag] = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the tags of %s: %w", repo, err)
	}
	for _, tag := range tags {
		content, err := s.Driver.GetContent(ctx, TagCurrentLinkPath(repo, tag))
		var notFound driver.PathNotFoundError
		switch {
		case errors.As(err, &notFound):
			continue // untagged meanwhile
		case err != nil:
			return nil, nil, fmt.Errorf("reading tag %s:%s: %w", repo, tag, err)
		}
		target, err := ParseLink(content)
		if err != nil {
			// Not a link this registry wrote: the tag names nothing we can tell, so it is
			// left as it is (the hard prune decides about it).
			s.log().WithField("tag", repo+":"+tag).WithError(err).Warn("unreadable tag link; leaving the tag")
			continue
		}
		if target == d {
			current = append(current, tag)
			delete(inIndex, tag)
		}
	}
	for tag := range inIndex {
		indexed = append(indexed, tag)
	}
	slices.Sort(current)
	slices.Sort(indexed)
	return current, indexed, nil
}
