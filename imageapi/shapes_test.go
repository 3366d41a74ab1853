package imageapi

import (
	"errors"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStreamShapesTheAPIServerWrites: every valid shape of an ImageStream is accepted, and an
// item without an image (a reference tag) names nothing; a malformed digest still fails.
func TestStreamShapesTheAPIServerWrites(t *testing.T) {
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"},
		Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{
			{
				Name:      "ref",
				Reference: true,
				From:      &corev1.ObjectReference{Kind: "DockerImage", Name: "quay.io/org/app:1"},
			},
			{Name: "spec-only", From: &corev1.ObjectReference{Kind: "DockerImage", Name: "quay.io/org/app:2"}},
		}},
		Status: imagev1.ImageStreamStatus{
			DockerImageRepository: "image-registry:5000/ns/app",
			Tags: []imagev1.NamedTagEventList{
				{Tag: "ref", Items: []imagev1.TagEvent{{DockerImageReference: "quay.io/org/app:1", Generation: 1}}},
				{
					Tag: "failed",
					Conditions: []imagev1.TagEventCondition{
						{Type: imagev1.ImportSuccess, Status: corev1.ConditionFalse, Reason: "NotFound", Generation: 2},
					},
				},
				{Tag: "no-items"},
				{Tag: "latest", Items: []imagev1.TagEvent{
					{Image: d("m1").String(), DockerImageReference: "image-registry:5000/ns/app@" + d("m1").String()},
					{DockerImageReference: "quay.io/org/app@" + d("x").String()},
				}},
			},
		},
	}
	got, err := ReduceStream(is)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Manifests, []digest.Digest{d("m1")}) || got.Repository != "ns/app" {
		t.Errorf("ReduceStream: %+v", got)
	}
	tags, err := TagHistories(is)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.Tags) != 4 || len(tags.Tags[3].Items) != 1 || tags.Tags[3].Items[0].Image != d("m1") ||
		len(tags.Tags[0].Items) != 0 {
		t.Errorf("TagHistories: %+v", tags)
	}

	empty := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "empty"}}
	if got, err := ReduceStream(empty); err != nil || len(got.Manifests) != 0 {
		t.Errorf("a stream without status: %+v, %v", got, err)
	}

	is.Status.Tags[3].Items[1].Image = "sha256:nothex"
	if _, err := ReduceStream(is); !errors.Is(err, ErrMalformed) {
		t.Errorf("a malformed digest: %v, want ErrMalformed", err)
	}
	if _, err := TagHistories(is); !errors.Is(err, ErrMalformed) {
		t.Errorf("TagHistories, a malformed digest: %v, want ErrMalformed", err)
	}
}

// TestListImageWithoutChildrenIsIncomplete: a list's Image recorded without its children
// cannot say what the list reaches, so storage is asked.
func TestListImageWithoutChildrenIsIncomplete(t *testing.T) {
	for _, mt := range []string{"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json"} {
		img := imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: d("idx").String()}, DockerImageManifestMediaType: mt}
		got, err := ReduceImage(&img)
		if err != nil || !got.Incomplete {
			t.Errorf("%s without children: %+v, %v; want Incomplete", mt, got, err)
		}
	}
}
