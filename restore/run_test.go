package restore_test

import (
	"context"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	"github.com/openshift/client-go/image/clientset/versioned/fake"
	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/restore"
	"github.com/hardprune/image-registry/storage"
)

// imageObject is the Image a push of img to repo records.
func imageObject(repo string, img prune.Image) *imagev1.Image {
	obj := &imagev1.Image{
		ObjectMeta:                   metav1.ObjectMeta{Name: img.Manifest.String()},
		DockerImageReference:         repo + "@" + img.Manifest.String(),
		DockerImageManifestMediaType: "application/vnd.docker.distribution.manifest.v2+json",
		DockerImageMetadata:          runtime.RawExtension{Raw: []byte(`{"Id":"` + img.Config.String() + `"}`)},
	}
	for _, l := range img.Layers {
		obj.DockerImageLayers = append(obj.DockerImageLayers, imagev1.ImageLayer{Name: l.String(), LayerSize: 1})
	}
	return obj
}

// TestCheckReadsBoth: the check reads storage and the whole image API, Images before streams (a tag
// naming an existing Image is no problem), and finds the stored manifest the API lost.
func TestCheckReadsBoth(t *testing.T) {
	d := inmemory.New()
	reg := testfixture.New(t, d)
	known := reg.Image("ns/app", "latest", "known", "base", "known-only")
	lost := reg.Image("ns/app", "", "lost", "base", "lost-only")

	stream := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}}
	stream.Status.Tags = []imagev1.NamedTagEventList{
		{Tag: "latest", Items: []imagev1.TagEvent{{Image: known.Manifest.String()}}},
	}
	client := fake.NewSimpleClientset(imageObject("ns/app", known), stream)
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	api := &imageapi.Lister{Client: client.ImageV1(), PageSize: 1, Log: log}
	store := &storage.Store{Driver: d, Workers: 2, Log: log}

	report, err := restore.Check(context.Background(), api, store)
	if err != nil {
		t.Fatal(err)
	}
	if report.Images != 1 || report.Streams != 1 || report.Repositories != 1 || len(report.BrokenImages) != 0 ||
		len(report.TagProblems) != 0 {
		t.Errorf("report %+v: want one sound Image, stream and repository", report)
	}
	var unknown []digest.Digest
	for _, m := range report.UnknownManifests {
		unknown = append(unknown, m.Digest)
	}
	if len(unknown) != 1 || unknown[0] != lost.Manifest {
		t.Errorf("unknown manifests %v, want %s", unknown, lost.Manifest)
	}
}
