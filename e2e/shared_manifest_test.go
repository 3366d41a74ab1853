package e2e

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// TestManifestTaggedInTwoRepositories: distribution's own collector once left a manifest in
// one repository without its layer links when the same manifest was tagged in another. The
// same manifest in two repositories is two sets of links: dropping it from one stream removes
// that repository's links only, and the other repository still pulls it whole.
func TestManifestTaggedInTwoRepositories(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startRegistry()
	img := image(t, "shared", "base", "shared-only")
	other := image(t, "other", "base", "other-only")
	e.mustPush("ns/a:latest", img)
	e.mustPush("ns/b:latest", img)
	e.mustPush("ns/a:other", other)

	// ns/a's tag history forgets the shared image (its tag moved to another image and the
	// ordinary prune trimmed the history); the Image stays, since ns/b still uses it.
	is, err := e.images.ImageStreams("ns").Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	is.Status.Tags = trimHistory(is.Status.Tags, "latest", d.String())
	if _, err := e.images.ImageStreams("ns").UpdateStatus(ctx, is, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	e.startRegistry(harness.ReadOnlyEnv)
	res := e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d:\n%s", res.ExitCode, res.Stderr)
	}
	const want = "Deleted 0 blobs\nFreed up 0 B of disk space\nDeleted 0 repositories\nDeleted 1 manifest links\n" +
		"Deleted 1 tags\nDeleted 0 tag index entries\nDeleted 2 layer links\nDeleted 0 uploads (0 B)\n"
	// ns/a loses the manifest link, the tag pointing at it, and the links of the blobs only the
	// shared image used there (its config and shared-only); base stays linked for "other".
	if res.Stdout != want {
		t.Errorf("delete output:\n%s\nwant:\n%s", res.Stdout, want)
	}
	if err := e.pullsIdentical("ns/b:latest", img); err != nil {
		t.Errorf("ns/b lost the shared image: %v", err)
	}
	if err := e.pullsIdentical("ns/b@"+d.String(), img); err != nil {
		t.Errorf("ns/b lost the shared image by digest: %v", err)
	}
	if err := e.pullsIdentical("ns/a:other", other); err != nil {
		t.Errorf("ns/a lost its other image: %v", err)
	}
	// In ns/a the shared image is gone whole: not a manifest without its layers.
	if _, err := remote.Image(e.ref("ns/a@" + d.String())); err == nil {
		t.Errorf("ns/a still serves the manifest it no longer references")
	}
	for _, h := range blobsOf(t, img) {
		if !e.blobExists(h) {
			t.Errorf("blob %s of the shared image was deleted", h)
		}
	}
}
