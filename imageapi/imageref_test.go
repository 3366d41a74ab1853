package imageapi

import (
	"strings"
	"testing"

	"github.com/hardprune/image-registry/prune/ordinary"
)

func TestParsePullSpec(t *testing.T) {
	digestRef := d("m").String()
	tests := []struct {
		spec  string
		tag   *ordinary.TagRef
		image *ordinary.ImageRef
		err   string
	}{
		{spec: "registry:5000/shop/web:v1", tag: &ordinary.TagRef{Namespace: "shop", Name: "web", Tag: "v1"}},
		{spec: "registry.example.com/shop/web", tag: &ordinary.TagRef{Namespace: "shop", Name: "web", Tag: "latest"}},
		{spec: "localhost/shop/web:2", tag: &ordinary.TagRef{Namespace: "shop", Name: "web", Tag: "2"}},
		{
			spec:  "image-registry.openshift-image-registry.svc:5000/ns/app@" + digestRef,
			image: &ordinary.ImageRef{Namespace: "ns", Name: "app", Digest: d("m")},
		},
		{
			spec:  "quay.io/org/app:1.0@" + digestRef,
			image: &ordinary.ImageRef{Namespace: "org", Name: "app", Digest: d("m")},
		},
		// Docker Hub written out in full has three components, and oc counts it (any host).
		{spec: "docker.io/library/x", tag: &ordinary.TagRef{Namespace: "library", Name: "x", Tag: "latest"}},
		// Names that default to Docker Hub, or have no host: nothing here.
		{spec: "x"},
		{spec: "x:1"},
		{spec: "library/x"},
		{spec: "a/b"},
		{spec: "a/b/c"},
		{spec: "a/b@" + digestRef},
		// A host and two or four path components: not an image stream.
		{spec: "quay.io/app:1"},
		{spec: "h.io/a/b/c"},
		{spec: "h.io:5000/a/b/c@" + digestRef},
		{spec: "registry.example.com"},
		// Not references at all.
		// A host may have capitals (names are case-insensitive); a path may not.
		{spec: "Registry:5000/shop/web", tag: &ordinary.TagRef{Namespace: "shop", Name: "web", Tag: "latest"}},
		{spec: "UPPER/x"},
		{spec: "shop/Web", err: "repository name must be lowercase"},
		{spec: "registry:5000/Shop/web", err: "repository name must be lowercase"},
		{spec: "::garbage", err: "invalid reference format"},
		{spec: "h.io/a/b:bad tag", err: "invalid reference format"},
		{spec: "h.io/a/b@sha256:short", err: "invalid reference format"},
		{spec: "h.io/a/b@sha256:" + strings.Repeat("0", 40), err: "invalid checksum digest length"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			use, err := parsePullSpec(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalPtr(use.Tag, tt.tag) || !equalPtr(use.Image, tt.image) {
				t.Errorf("got tag %v image %v, want tag %v image %v", use.Tag, use.Image, tt.tag, tt.image)
			}
		})
	}
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// TestInvalidRefLine: a reference that does not parse is said the way oc says it.
func TestInvalidRefLine(t *testing.T) {
	uses := &objectUses{referrer: ordinary.Referrer{Resource: "pod", Namespace: "shop", Name: "web-1"}}
	uses.podSpec(podSpec([]string{"shop/Web"}, []string{"::garbage", " ", "UPPER/x"}))
	if len(uses.invalid) != 2 || len(uses.uses) != 0 {
		t.Fatalf("got %+v", uses)
	}
	want := []string{
		`pod/web-1 namespace=shop: init container init-0: invalid image reference "shop/Web": repository name must be lowercase`,
		`pod/web-1 namespace=shop: container c-0: invalid image reference "::garbage": invalid reference format`,
	}
	for i, w := range want {
		if got := uses.invalid[i].Error(); got != w {
			t.Errorf("invalid %d:\n got %s\nwant %s", i, got, w)
		}
	}
}

func TestParseBuildNames(t *testing.T) {
	if ref, err := parseImageStreamImage("ns", "base@"+d("m").String()); err != nil ||
		ref != (ordinary.ImageRef{Namespace: "ns", Name: "base", Digest: d("m")}) {
		t.Errorf("ImageStreamImage: %v, %v", ref, err)
	}
	for name, want := range map[string]string{
		"base":                `expected exactly one @ in the isimage name "base"`,
		"a@b@c":               `expected exactly one @ in the isimage name "a@b@c"`,
		"@" + d("m").String(): `must have a name and ID`,
		"base@":               `must have a name and ID`,
		"base@nope":           `the ID is not a digest`,
	} {
		if _, err := parseImageStreamImage("ns", name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ImageStreamImage %q: err = %v, want %q", name, err, want)
		}
	}
	if ref, err := parseImageStreamTag("ns", "base:2"); err != nil ||
		ref != (ordinary.TagRef{Namespace: "ns", Name: "base", Tag: "2"}) {
		t.Errorf("ImageStreamTag: %v, %v", ref, err)
	}
	for name, want := range map[string]string{
		"base":                    `expected exactly one : delimiter in the istag "base"`,
		"a:b:c":                   `expected exactly one : delimiter`,
		":2":                      `must have a name and a tag`,
		"base:":                   `must have a name and a tag`,
		"base@" + d("m").String(): `is an image stream image, not an image stream tag`,
	} {
		if _, err := parseImageStreamTag("ns", name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ImageStreamTag %q: err = %v, want %q", name, err, want)
		}
	}
}
