package imageapi

import (
	"strings"

	imagev1 "github.com/openshift/api/image/v1"
)

// ManagedAnnotation marks the Images the cluster's own registry stores.
const ManagedAnnotation = "openshift.io/image.managed"

// Managed tells whether this registry stores an Image's data: it carries ManagedAnnotation, or
// its dockerImageReference names no registry host (the `<namespace>/<name>@<digest>` this
// registry's push records). Images imported from other registries are not stored here.
func Managed(img *imagev1.Image) bool {
	return img.Annotations[ManagedAnnotation] == "true" || LocalReference(img.DockerImageReference)
}

// LocalReference tells whether a dockerImageReference names no registry host: empty, or a
// first component with no dot, no colon and not "localhost".
func LocalReference(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	if !ok {
		return true
	}
	return !strings.ContainsAny(first, ".:") && first != "localhost"
}
