package imageapi

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	buildv1 "github.com/openshift/api/build/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/hardprune/image-registry/prune/ordinary"
)

// imageUse is what one reference protects: an image stream tag, an image of a stream by
// digest, or (both nil) nothing a stream of this cluster could hold.
type imageUse struct {
	Tag   *ordinary.TagRef
	Image *ordinary.ImageRef
}

// parsePullSpec reads a pull spec the way oc adm prune images does. It fails only when the
// spec does not parse. Only the form host/namespace/name[:tag][@digest] can name an image
// stream (any host: the prune cannot tell which names this registry, so it keeps what might
// be); every other form (a name defaulting to Docker Hub, two or four path components) uses
// nothing here. A digest names an image, even with a tag; a tag, or none ("latest"), names
// the tag.
func parsePullSpec(spec string) (imageUse, error) {
	ref, err := reference.Parse(spec)
	if err != nil {
		return imageUse{}, err
	}
	named, ok := ref.(reference.Named)
	if !ok {
		return imageUse{}, fmt.Errorf("reference %s has no name", spec)
	}
	// Not reference.Domain: it takes any first component for a host. As Docker (and oc) read
	// it, the first component is a host only when it looks like one.
	host, path, ok := strings.Cut(named.Name(), "/")
	if !ok || !looksLikeHost(host) {
		return imageUse{}, nil
	}
	namespace, name, ok := strings.Cut(path, "/")
	if !ok || strings.Contains(name, "/") {
		return imageUse{}, nil
	}
	if c, ok := named.(reference.Canonical); ok {
		return imageUse{Image: &ordinary.ImageRef{Namespace: namespace, Name: name, Digest: c.Digest()}}, nil
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return imageUse{Tag: &ordinary.TagRef{Namespace: namespace, Name: name, Tag: tag}}, nil
}

// looksLikeHost tells whether the first component of a name is a registry host: it has a dot
// or a port, or is localhost.
func looksLikeHost(component string) bool {
	return strings.ContainsAny(component, ".:") || component == "localhost"
}

// buildInput is the image a build strategy starts from: the source, docker or custom
// strategy's from, the first one set (library-go's buildutil.GetInputReference); nil for none.
func buildInput(strategy *buildv1.BuildStrategy) *corev1.ObjectReference {
	switch {
	case strategy.SourceStrategy != nil:
		return &strategy.SourceStrategy.From
	case strategy.DockerStrategy != nil:
		return strategy.DockerStrategy.From
	case strategy.CustomStrategy != nil:
		return &strategy.CustomStrategy.From
	}
	return nil
}

// parseImageStreamImage reads an ImageStreamImage name, "<stream>@<digest>", in namespace.
func parseImageStreamImage(namespace, name string) (ordinary.ImageRef, error) {
	parts := strings.Split(name, "@")
	if len(parts) != 2 {
		return ordinary.ImageRef{}, fmt.Errorf("expected exactly one @ in the isimage name %q", name)
	}
	if parts[0] == "" || parts[1] == "" {
		return ordinary.ImageRef{}, fmt.Errorf("image stream image name %q must have a name and ID", name)
	}
	d, err := digest.Parse(parts[1])
	if err != nil {
		return ordinary.ImageRef{}, fmt.Errorf("image stream image name %q: the ID is not a digest: %v", name, err)
	}
	return ordinary.ImageRef{Namespace: namespace, Name: parts[0], Digest: d}, nil
}

// parseImageStreamTag reads an ImageStreamTag name, "<stream>:<tag>", in namespace.
func parseImageStreamTag(namespace, name string) (ordinary.TagRef, error) {
	if strings.Contains(name, "@") {
		return ordinary.TagRef{}, fmt.Errorf("%q is an image stream image, not an image stream tag", name)
	}
	parts := strings.Split(name, ":")
	if len(parts) != 2 {
		return ordinary.TagRef{}, fmt.Errorf("expected exactly one : delimiter in the istag %q", name)
	}
	if parts[0] == "" || parts[1] == "" {
		return ordinary.TagRef{}, fmt.Errorf("image stream tag name %q must have a name and a tag", name)
	}
	return ordinary.TagRef{Namespace: namespace, Name: parts[0], Tag: parts[1]}, nil
}
