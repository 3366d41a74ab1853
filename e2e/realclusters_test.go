package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// nestedIndex is ns/app:latest as an OCI index whose one child is an index of two images.
type nestedIndex struct {
	outer, inner v1.Hash
	amd, arm     v1.Image
}

func pushNestedIndex(t *testing.T, e *env) nestedIndex {
	t.Helper()
	amd := image(t, "nested-amd64", "base", "nested-amd64-only")
	arm := image(t, "nested-arm64", "base", "nested-arm64-only")
	inner := harness.PlatformIndex(amd, arm)
	outer := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: inner})
	if err := remote.WriteIndex(e.ref("ns/app:latest"), outer); err != nil {
		t.Fatalf("pushing the index of indexes: %v", err)
	}
	od, _ := outer.Digest()
	id, _ := inner.Digest()
	return nestedIndex{outer: od, inner: id, amd: amd, arm: arm}
}

// pullsByPlatform pulls ns/app:latest the way a client on each platform does: the outer
// index, the inner one, then the image.
func (e *env) pullsByPlatform(n nestedIndex) error {
	outer, err := remote.Index(e.ref("ns/app:latest"))
	if err != nil {
		return fmt.Errorf("pulling the outer index: %w", err)
	}
	inner, err := outer.ImageIndex(n.inner)
	if err != nil {
		return fmt.Errorf("pulling the inner index: %w", err)
	}
	for _, want := range []v1.Image{n.amd, n.arm} {
		d, _ := want.Digest()
		if _, err := inner.Image(d); err != nil {
			return fmt.Errorf("pulling %s through the index: %w", d, err)
		}
		if err := e.pullsIdentical("ns/app@"+d.String(), want); err != nil {
			return err
		}
	}
	return nil
}

// TestIndexOfIndexesKeepsWhatItReaches: a list that stays keeps all it reaches, at any depth,
// whether or not each level has an Image (issue 10, case 1 and 15). Before, the inner
// manifests' revision links went (and their blobs, when their Images were gone too), and
// ns/app:latest no longer pulled by platform.
func TestIndexOfIndexesKeepsWhatItReaches(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dropImages func(n nestedIndex) []v1.Hash
	}{
		{"the inner index lost its Image", func(n nestedIndex) []v1.Hash { return []v1.Hash{n.inner} }},
		{"the inner index and both images lost their Images", func(n nestedIndex) []v1.Hash {
			amd, _ := n.amd.Digest()
			arm, _ := n.arm.Digest()
			return []v1.Hash{n.inner, amd, arm}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.startRegistry()
			n := pushNestedIndex(t, e)
			// Garbage beside it, so that the run has something to delete: an image whose
			// Image was deleted by hand.
			junk := image(t, "junk", "junk-only")
			junkd := e.mustPush("ns/app:junk", junk)
			mustDeleteImage(t, e, junkd)
			for _, d := range tc.dropImages(n) {
				mustDeleteImage(t, e, d)
			}
			e.startRegistry(harness.ReadOnlyEnv)

			amdd, _ := n.amd.Digest()
			res := e.prune(nil, "-prune-explain="+amdd.String(), noGrace)
			if res.ExitCode != 0 || !strings.Contains(res.Stdout, "would be kept") ||
				strings.Contains(res.Stdout, "manifest link ns/app: would be deleted") {
				t.Fatalf("explain: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}

			res = e.prune(nil, "-prune=delete", noGrace)
			if res.ExitCode != 0 {
				t.Fatalf("delete: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}
			if !strings.Contains(res.Stdout, "Deleted 1 manifest links\n") ||
				!strings.Contains(res.Stdout, "Deleted 1 tags\n") {
				t.Errorf("want the junk manifest link and tag deleted, and nothing else:\n%s", res.Stdout)
			}
			if e.blobExists(junkd) {
				t.Errorf("the junk manifest %s stays", junkd)
			}
			if err := e.pullsByPlatform(n); err != nil {
				t.Fatalf("after the prune: %v\n%s", err, res.Stdout)
			}

			// The consistency check sees nothing broken; the Images removed by hand are stored
			// manifests without an Image, which recover can record again.
			res = e.prune(nil, "-restore=check")
			if strings.Contains(res.Stdout, "Broken") || res.ExitCode == 1 {
				t.Fatalf("restore check after the prune: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}

			// A second run deletes nothing more.
			res = e.prune(nil, "-prune=check", noGrace)
			if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "Would delete 0 blobs\n") ||
				!strings.Contains(res.Stdout, "Would delete 0 manifest links\n") {
				t.Fatalf("second run: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}

			// What an earlier prune broke, -restore=check now sees: the tag's list reaches a
			// manifest the repository no longer links.
			link := filepath.Join(
				e.storageDir,
				"docker/registry/v2/repositories/ns/app/_manifests/revisions/sha256",
				amdd.Hex,
			)
			if err := os.RemoveAll(link); err != nil {
				t.Fatal(err)
			}
			res = e.prune(nil, "-restore=check")
			want := fmt.Sprintf(
				"Broken tag ns/app:latest at position 0 out of 1: list %s reaches manifest %s, but repository ns/app does not link it\n",
				n.outer,
				amdd,
			)
			if res.ExitCode != 3 || !strings.Contains(res.Stdout, want) {
				t.Fatalf(
					"restore check of a broken nested list: exit %d, want 3 and %q\n%s\n%s",
					res.ExitCode,
					want,
					res.Stdout,
					res.Stderr,
				)
			}
		})
	}
}

// TestStreamShapesOfARealCluster: the shapes the OpenShift API server writes (a reference tag
// whose item has no image, a failed import's conditions, spec-only tags, an empty status) are
// valid, and every mode runs; a malformed digest still stops the run (issue 10, case 2).
func TestStreamShapesOfARealCluster(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startRegistry()
	keep := e.mustPush("ns/app:latest", image(t, "keep", "base", strings.Repeat("keep-only ", 300)))
	gone := e.mustPush("ns/doomed:latest", image(t, "doomed", "base", "doomed-only"))
	mustDeleteImage(t, e, gone)
	if err := e.images.ImageStreams("ns").Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	external := "quay.io/org/tool@sha256:" + strings.Repeat("ab", 32)
	streams := []*imagev1.ImageStream{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "reference"},
			Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{
				{
					Name:      "1.0",
					Reference: true,
					From:      &corev1.ObjectReference{Kind: "DockerImage", Name: "quay.io/org/tool:1.0"},
				},
			}},
			Status: imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{
				{
					Tag:   "1.0",
					Items: []imagev1.TagEvent{{Created: metav1.Now(), DockerImageReference: external, Generation: 1}},
				},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "failed-import"},
			Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{
				{
					Name: "latest",
					From: &corev1.ObjectReference{Kind: "DockerImage", Name: "quay.io/org/missing:latest"},
				},
			}},
			Status: imagev1.ImageStreamStatus{
				Tags: []imagev1.NamedTagEventList{{Tag: "latest", Conditions: []imagev1.TagEventCondition{{
					Type: imagev1.ImportSuccess, Status: corev1.ConditionFalse, Reason: "NotFound", Message: "not found", Generation: 2,
				}}}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "spec-only"},
			Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{
				{Name: "v1", From: &corev1.ObjectReference{Kind: "ImageStreamTag", Name: "app:latest"}},
			}},
		},
		{ObjectMeta: metav1.ObjectMeta{Name: "empty"}},
	}
	for _, is := range streams {
		if _, err := e.images.ImageStreams("ns").Create(ctx, is, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", is.Name, err)
		}
	}
	e.startRegistry(harness.ReadOnlyEnv)

	for _, args := range [][]string{{"-prune=check", noGrace}, {"-prune-explain=" + keep.String(), noGrace}, {"-restore=check"}} {
		res := e.prune(nil, args...)
		if res.ExitCode == 1 || res.ExitCode == 2 || strings.Contains(res.Stderr, "malformed") {
			t.Fatalf("%v: exit %d\n%s\n%s", args, res.ExitCode, res.Stdout, res.Stderr)
		}
	}
	res := e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Deleted 1 repositories\n") {
		t.Fatalf("delete: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if e.blobExists(gone) {
		t.Errorf("the doomed image's manifest stays")
	}
	if !e.blobExists(keep) {
		t.Errorf("the kept image's manifest went")
	}

	// A malformed, non-empty digest still stops every mode before anything is deleted.
	bad := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: "malformed"},
		Status: imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{
			{Tag: "x", Items: []imagev1.TagEvent{{Image: "sha256:nothex", DockerImageReference: external}}},
		}},
	}
	if _, err := e.images.ImageStreams("ns").Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	res = e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, `image "sha256:nothex" is not a digest`) {
		t.Fatalf("a malformed digest: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if e.snapshot() != before {
		t.Fatal("a run stopped by a malformed digest changed storage")
	}
}

// TestWrongClusterInterlock: a pruner pointed at the wrong cluster (an API naming none of the
// stored repositories, one Image sharing a base layer), or a run that would remove more than
// the allowed share of ten or more repositories, refuses with one line and deletes nothing
// (issue 10, case 5).
func TestWrongClusterInterlock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startRegistry()
	var base v1.Hash
	for i := range 10 {
		img := image(t, fmt.Sprint(i), "base", fmt.Sprintf("own-%d", i))
		e.mustPush(fmt.Sprintf("ns/app%d:latest", i), img)
		base = blobsOf(t, img)[2]
	}
	e.stopRegistry()

	// The wrong cluster: its own API, naming none of the stored repositories, with one Image
	// that shares the base layer.
	wrong := newEnvWith(t, harness.StartImageAPIT(t))
	wrong.storageDir = e.storageDir
	other := "sha256:" + strings.Repeat("cd", 32)
	if _, err := wrong.images.Images().Create(ctx, &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: other},
		DockerImageLayers: []imagev1.ImageLayer{{Name: base.String(), LayerSize: 4}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.images.ImageStreams("other").Create(ctx, &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Name: "thing"},
		Status: imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{{Tag: "latest", Items: []imagev1.TagEvent{{Image: other}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wrong.startRegistry(harness.ReadOnlyEnv)
	before := wrong.snapshot()
	res := wrong.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, "none of the 10 stored repositories has an image stream") ||
		!strings.Contains(res.Stderr, "-prune-allow-delete-all") ||
		strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 {
		t.Fatalf("the wrong cluster: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if wrong.snapshot() != before {
		t.Fatal("a refused run changed storage")
	}
	res = wrong.prune(nil, "-prune=check", noGrace)
	if res.ExitCode != 0 || !strings.Contains(res.Stderr, "a delete run will refuse") {
		t.Fatalf("check on the wrong cluster: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	wrong.stopRegistry()

	// The right cluster, where six of ten streams were deleted: more than half the
	// repositories would go.
	for i := range 6 {
		if err := e.images.ImageStreams("ns").Delete(ctx, fmt.Sprintf("app%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.startRegistry(harness.ReadOnlyEnv)
	before = e.snapshot()
	res = e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, "refusing to delete 6 of the 10 stored repositories (60%") ||
		!strings.Contains(res.Stderr, "-prune-max-delete-ratio=1") {
		t.Fatalf("more than half the repositories: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if e.snapshot() != before {
		t.Fatal("a refused run changed storage")
	}
	res = e.prune(nil, "-prune=delete", noGrace, "-prune-max-delete-ratio=1")
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Deleted 6 repositories\n") {
		t.Fatalf("with the override: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
}
