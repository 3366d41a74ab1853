package harness

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// PlatformIndex is the multi-arch image index clusters hold most: amd64 for linux/amd64 and,
// unless nil, arm64 for linux/arm64, in that order (the order fixes the index's digest).
func PlatformIndex(amd64, arm64 v1.Image) v1.ImageIndex {
	adds := []mutate.IndexAddendum{{
		Add:        amd64,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
	}}
	if arm64 != nil {
		adds = append(adds, mutate.IndexAddendum{
			Add:        arm64,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}},
		})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}
