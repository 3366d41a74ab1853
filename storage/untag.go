package storage

import (
	"context"

	"github.com/hardprune/image-registry/prune"
)

// Untagging returns a Remover that deletes a manifest link as the registry's DELETE of a
// manifest does (registry/deletes.go): the tags whose current link points at the manifest and
// its entries in the other tags' indexes first, then the link, each through next; so that no
// tag of the repository is left naming a manifest that is gone. Other objects go to next as
// they are. The ordinary prune deletes through it when it works in storage directly.
func (s *Store) Untagging(next prune.Remover) prune.Remover {
	return &untagging{store: s, next: next}
}

type untagging struct {
	store *Store
	next  prune.Remover
}

func (u *untagging) Delete(ctx context.Context, o prune.Object) error {
	if o.Kind != prune.KindManifestLink {
		return u.next.Delete(ctx, o)
	}
	current, indexed, err := u.store.TagsNaming(ctx, o.Repository, o.Digest)
	if err != nil {
		return err
	}
	for _, tag := range current {
		if err := u.next.Delete(ctx, prune.Object{Kind: prune.KindTag, Repository: o.Repository, Name: tag, Digest: o.Digest}); err != nil {
			return err
		}
	}
	for _, tag := range indexed {
		entry := prune.Object{Kind: prune.KindTagIndexEntry, Repository: o.Repository, Name: tag, Digest: o.Digest}
		if err := u.next.Delete(ctx, entry); err != nil {
			return err
		}
	}
	return u.next.Delete(ctx, o)
}
