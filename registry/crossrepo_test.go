package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	"github.com/openshift/client-go/image/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"

	"github.com/hardprune/image-registry/imageapi"
)

func dg(s string) digest.Digest { return digest.FromString(s) }

// TestStreamAccessUses: a stream uses the manifests of its tag histories (older items too),
// what their Images use, and through a list, its children's; an Image the API lacks leaves
// its manifest alone; an API that fails uses nothing, and is asked again on the next call.
func TestStreamAccessUses(t *testing.T) {
	meta := func(config digest.Digest) runtime.RawExtension {
		return runtime.RawExtension{Raw: []byte(`{"kind":"DockerImage","apiVersion":"1.0","Id":"` + config + `"}`)}
	}
	child := &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: dg("child").String()},
		DockerImageMetadata: meta(dg("child-config")), DockerImageManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
		DockerImageLayers: []imagev1.ImageLayer{{Name: dg("child-layer").String()}}}
	list := &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: dg("list").String()},
		DockerImageManifestMediaType: "application/vnd.oci.image.index.v1+json",
		DockerImageManifests:         []imagev1.ImageManifest{{Digest: dg("child").String()}}}
	old := &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: dg("old").String()},
		DockerImageMetadata: meta(dg("old-config")), DockerImageManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
		DockerImageLayers: []imagev1.ImageLayer{{Name: dg("old-layer").String()}}}
	stream := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "app"},
		Status: imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{
			{Tag: "v1", Items: []imagev1.TagEvent{{Image: dg("list").String()}, {Image: old.Name}}},
			{Tag: "gone", Items: []imagev1.TagEvent{{Image: dg("no-image").String()}}},
			{Tag: "ref", Items: []imagev1.TagEvent{{DockerImageReference: "quay.io/x/y:z"}}},
		}}}
	client := fake.NewSimpleClientset(child, list, old, stream)
	a := newStreamAccess(client.ImageV1(), inmemory.New())
	ctx := context.Background()

	for _, s := range []string{"list", "child", "child-config", "child-layer", "old", "old-config", "old-layer", "no-image"} {
		if !a.uses(ctx, "b/app", dg(s)) {
			t.Errorf("b/app should use %s", s)
		}
	}
	for repo, d := range map[string]string{"b/app": "unrelated", "c/app": "list", "nonamespace": "list"} {
		if a.uses(ctx, repo, dg(d)) {
			t.Errorf("%s should not use %s", repo, d)
		}
	}
	if d, ok := a.tag(ctx, "b/app", "v1"); !ok || d != dg("list") {
		t.Errorf("tag v1 = %s, %v; want the newest item", d, ok)
	}
	if _, ok := a.tag(ctx, "b/app", "ref"); ok {
		t.Error("a reference tag names nothing stored here")
	}

	failing := fake.NewSimpleClientset(stream)
	failing.PrependReactor("get", "imagestreams", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	a = newStreamAccess(failing.ImageV1(), inmemory.New())
	if a.uses(ctx, "b/app", dg("list")) {
		t.Error("an image API that fails must serve nothing unlinked")
	}
	if n := len(failing.Actions()); n != 1 {
		t.Fatalf("%d requests", n)
	}
	a.uses(ctx, "b/app", dg("list"))
	if n := len(failing.Actions()); n != 2 {
		t.Errorf("a failure was cached: %d requests after two calls", n)
	}
}

// TestStreamAccessBoundedWait: an image API that accepts the connection and never answers
// makes the stream use nothing unlinked, after streamReadTimeout, not never.
func TestStreamAccessBoundedWait(t *testing.T) {
	defer func(d time.Duration) { streamReadTimeout = d }(streamReadTimeout)
	streamReadTimeout = 200 * time.Millisecond
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	client, err := imageapi.NewClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := newStreamAccess(client, inmemory.New())
	start := time.Now()
	if a.uses(context.Background(), "b/app", dg("x")) {
		t.Error("an image API that does not answer must serve nothing unlinked")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %s", waited)
	}
}
