package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// TestRestore: -restore=check finds Images whose blobs storage lost, the tags naming them,
// tags naming Images that do not exist, and what storage holds that the API does not know;
// -restore=recover records the latter in the image API, as a push would have.
func TestRestore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startRegistry()
	a := image(t, "a", "base", "a-only")
	b := image(t, "b", "base", "b-only")
	c := image(t, "c", "base", "c-only")
	ad := e.mustPush("ns/app:v1", a)
	bd := e.mustPush("ns/app:latest", b)
	cd := e.mustPush("ns/other:latest", c)
	amd := image(t, "amd64", "base", "amd64-only")
	idx := harness.PlatformIndex(amd, nil)
	if err := remote.WriteIndex(e.ref("ns/multi:latest"), idx); err != nil {
		t.Fatal(err)
	}
	idxd, _ := idx.Digest()
	amdd, _ := amd.Digest()
	e.startRegistry(harness.ReadOnlyEnv)

	res := e.prune(nil, "-restore=check")
	if res.ExitCode != 0 || res.Stdout != "Consistent: 5 images, 3 image streams, 3 repositories\n" {
		t.Fatalf("a consistent registry: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}

	// Storage loses a layer of b; the Image of c is deleted by hand; the stream ns/multi is
	// deleted, its Images kept.
	bOnly := blobsOf(t, b)[3]
	if err := os.RemoveAll(filepath.Dir(e.blobPath(bOnly))); err != nil {
		t.Fatal(err)
	}
	original, err := e.images.Images().Get(ctx, cd.String(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustDeleteImage(t, e, cd)
	if err := e.images.ImageStreams("ns").Delete(ctx, "multi", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	before := e.snapshot()
	res = e.prune(nil, "-restore=check")
	t.Logf("-restore=check:\n%s", res.Stdout)
	if res.ExitCode != 3 {
		t.Errorf("check: exit %d, want 3\n%s", res.ExitCode, res.Stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("Broken image %s: blob %s missing (layer)\n", bd, bOnly),
		fmt.Sprintf("Broken tag ns/app:latest at position 0 out of 1: image %s is broken\n", bd),
		fmt.Sprintf("Missing image ns/other:latest at position 0 out of 1: Image %s does not exist (recoverable)\n", cd),
		"Unknown repository ns/multi: no image stream\n",
		fmt.Sprintf("Unknown manifest ns/multi@%s: no image stream (recoverable)\n", idxd),
		fmt.Sprintf("Unknown manifest ns/other@%s: no Image (recoverable)\n", cd),
		"Use -restore=recover to record 2 stored manifests in the image API\n",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	if strings.Contains(res.Stdout, ad.String()) {
		t.Errorf("the intact image a is reported")
	}
	if e.snapshot() != before {
		t.Error("the check changed storage")
	}

	res = e.prune(nil, "-restore=recover")
	t.Logf("-restore=recover:\n%s", res.Stdout)
	if res.ExitCode != 3 {
		t.Errorf("recover: exit %d, want 3 (the lost layer cannot come back)\n%s", res.ExitCode, res.Stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("Recovered image %s from ns/other\n", cd),
		fmt.Sprintf("Recorded ns/multi:lost-found-%s (image %s)\n", idxd.Hex, idxd),
		"Recovered 1 images, recorded 1 lost-found tags\n",
		"Labels and annotations of the recovered images could not be recovered",
		"Left 2 problems that recovery cannot fix\n",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("recover output lacks %q", want)
		}
	}
	if strings.Contains(res.Stdout, "lost-found-"+amdd.Hex) || strings.Contains(res.Stdout, "ns/other:lost-found") {
		t.Error("a child of a list, or a manifest its stream names, got a lost-found tag")
	}

	// The recovered Image has the shape a push gives it.
	got, err := e.images.Images().Get(ctx, cd.String(), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the recovered Image: %v", err)
	}
	if !reflect.DeepEqual(got.DockerImageLayers, original.DockerImageLayers) ||
		got.DockerImageManifestMediaType != original.DockerImageManifestMediaType ||
		configID(t, got) != configID(t, original) ||
		got.DockerImageReference != original.DockerImageReference {
		t.Errorf("recovered Image differs:\n%+v\nwant:\n%+v", got, original)
	}
	multi, err := e.images.ImageStreams("ns").Get(ctx, "multi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := tagHistory(multi, "lost-found-"+idxd.Hex); !reflect.DeepEqual(h, []string{idxd.String()}) {
		t.Errorf("ns/multi lost-found history %v", h)
	}

	// Only what recovery cannot fix is left; the prune keeps what was recovered.
	res = e.prune(nil, "-restore=check")
	t.Logf("-restore=check after recover:\n%s", res.Stdout)
	if res.ExitCode != 3 || strings.Contains(res.Stdout, "Unknown") || strings.Contains(res.Stdout, "Missing image") ||
		!strings.Contains(res.Stdout, "Broken image") {
		t.Errorf("check after recover: exit %d\n%s", res.ExitCode, res.Stdout)
	}
	res = e.prune(nil, "-prune=check", noGrace)
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "Would delete 0 blobs\n") ||
		!strings.Contains(res.Stdout, "Would delete 0 repositories\n") {
		t.Errorf("prune after recover: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
}

func configID(t *testing.T, img *imagev1.Image) string {
	t.Helper()
	var meta struct {
		ID string `json:"Id"`
	}
	if err := json.Unmarshal(img.DockerImageMetadata.Raw, &meta); err != nil {
		t.Fatal(err)
	}
	return meta.ID
}
