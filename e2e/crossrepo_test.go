package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// TestTagCopiedAcrossNamespaces: b/app:v1 naming an Image pushed to a/app (what `oc tag
// a/app:v1 b/app:v1` leaves) pulls from b/app, by tag and by digest, although b/app's storage
// links none of it; what b/app's stream does not use stays out of reach. After a/app's stream
// goes and the hard prune removes a/app's repository, b/app:v1 still pulls.
func TestTagCopiedAcrossNamespaces(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.startRegistry()
	app := image(t, "app", "base", "app-only")
	d := e.mustPush("a/app:v1", app)
	other := image(t, "other", "other-only")
	e.mustPush("a/other:v1", other)

	stream := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "app"},
		Status: imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{{Tag: "v1", Items: []imagev1.TagEvent{{
			Created: metav1.Now(), Image: d.String(), DockerImageReference: "a/app@" + d.String(),
		}}}}},
	}
	if _, err := e.images.ImageStreams("b").Create(ctx, stream, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"b/app:v1", "b/app@" + d.String()} {
		if err := e.pullsIdentical(ref, app); err != nil {
			t.Errorf("a copied tag: %v", err)
		}
	}

	// Out of reach: a blob b/app's stream does not use, a repository without a stream, a tag
	// the stream does not have.
	status := func(method, path string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+e.reg.Host+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	otherLayer := blobsOf(t, other)[2]
	appLayer := blobsOf(t, app)[2]
	for path, want := range map[string]int{
		"/v2/b/app/blobs/" + otherLayer.String(): http.StatusNotFound,
		"/v2/c/app/blobs/" + appLayer.String():   http.StatusNotFound,
		"/v2/c/app/manifests/" + d.String():      http.StatusNotFound,
		"/v2/b/app/manifests/v2":                 http.StatusNotFound,
		"/v2/b/app/blobs/" + appLayer.String():   http.StatusOK,
	} {
		if got := status(http.MethodHead, path); got != want {
			t.Errorf("HEAD %s: %d, want %d", path, got, want)
		}
	}

	// a/app's stream goes (its Image stays: b/app names it); the hard prune removes the
	// repository a/app, whose stream is gone, and must keep the blobs b/app pulls.
	if err := e.images.ImageStreams("a").Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.startRegistry(harness.ReadOnlyEnv)
	res := e.prune(nil, "-prune=delete", noGrace, anyShare)
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Deleted 1 repositories") {
		t.Fatalf("prune: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if err := e.pullsIdentical("b/app:v1", app); err != nil {
		t.Errorf("after a/app was pruned: %v", err)
	}
}
