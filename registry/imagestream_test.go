package registry

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	imagev1 "github.com/openshift/api/image/v1"
	"github.com/openshift/client-go/image/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func blob(s string, size int64, mediaType string) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Digest: digest.FromString(s), Size: size}
}

func schema2Manifest(t *testing.T, config v1.Descriptor, layers ...v1.Descriptor) *schema2.DeserializedManifest {
	t.Helper()
	m, err := schema2.FromStruct(schema2.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: schema2.MediaTypeManifest,
		Config: config, Layers: layers,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type metadata struct {
	ID   string `json:"Id"`
	Size int64  `json:"Size"`
}

func readMetadata(t *testing.T, img *imagev1.Image) metadata {
	t.Helper()
	var m metadata
	if err := json.Unmarshal(img.DockerImageMetadata.Raw, &m); err != nil {
		t.Fatalf("metadata %s: %v", img.DockerImageMetadata.Raw, err)
	}
	return m
}

func TestImageAsOpenShiftRecordsIt(t *testing.T) {
	config := blob("config", 1000, schema2.MediaTypeImageConfig)
	l1 := blob("l1", 20000, schema2.MediaTypeLayer)
	l2 := blob("l2", 300, schema2.MediaTypeLayer)
	// A layer used twice counts once, as in OpenShift's size.
	m := schema2Manifest(t, config, l1, l2, l1)
	_, payload, _ := m.Payload()
	dgst := digest.FromBytes(payload)

	r := &Recorder{ServerAddr: "image-registry.openshift-image-registry.svc:5000"}
	img, err := r.Image("ns/app", dgst, m)
	if err != nil {
		t.Fatal(err)
	}
	want := "image-registry.openshift-image-registry.svc:5000/ns/app@" + dgst.String()
	if img.DockerImageReference != want {
		t.Errorf("dockerImageReference %q, want %q", img.DockerImageReference, want)
	}
	for k, want := range map[string]string{
		"openshift.io/image.managed":            "true",
		"image.openshift.io/manifestBlobStored": "true",
		"image.openshift.io/dockerLayersOrder":  "ascending",
	} {
		if img.Annotations[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, img.Annotations[k], want)
		}
	}
	meta := readMetadata(t, img)
	if meta.ID != config.Digest.String() || meta.Size != 1000+20000+300 {
		t.Errorf("metadata %+v, want Id %s and Size %d", meta, config.Digest, 1000+20000+300)
	}
	if len(img.DockerImageLayers) != 3 || img.DockerImageLayers[1].LayerSize != 300 {
		t.Errorf("layers %+v", img.DockerImageLayers)
	}

	// Without an address: the reference names no registry, as before.
	img, err = (&Recorder{}).Image("ns/app", dgst, m)
	if err != nil {
		t.Fatal(err)
	}
	if img.DockerImageReference != "ns/app@"+dgst.String() {
		t.Errorf("dockerImageReference without an address: %q", img.DockerImageReference)
	}
}

func TestImageSizeOfOCIManifestAndIndex(t *testing.T) {
	config := blob("config", 50, v1.MediaTypeImageConfig)
	m, err := ocischema.FromStruct(ocischema.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: config,
		Layers: []v1.Descriptor{blob("a", 7, v1.MediaTypeImageLayerGzip), config},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := (&Recorder{ServerAddr: "r.example.com"}).Image("ns/app", digest.FromString("m"), m)
	if err != nil {
		t.Fatal(err)
	}
	// A layer that is the config blob counts once.
	if meta := readMetadata(t, img); meta.Size != 57 {
		t.Errorf("Size %d, want 57", meta.Size)
	}

	idx, err := ocischema.FromDescriptors([]v1.Descriptor{{
		MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("child"), Size: 500,
		Platform: &v1.Platform{Architecture: "amd64", OS: "linux"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, err = (&Recorder{ServerAddr: "r.example.com"}).Image("ns/app", digest.FromString("i"), idx)
	if err != nil {
		t.Fatal(err)
	}
	// A list has no config, hence no metadata, but is managed like any Image.
	if len(img.DockerImageMetadata.Raw) != 0 || img.Annotations[imagev1.ManagedByOpenShiftAnnotation] != "true" ||
		len(img.DockerImageManifests) != 1 {
		t.Errorf("index Image: metadata %s, annotations %v, manifests %v",
			img.DockerImageMetadata.Raw, img.Annotations, img.DockerImageManifests)
	}
}

func TestRecordTagSetsDockerImageRepository(t *testing.T) {
	ctx := context.Background()
	client := fake.NewSimpleClientset(&imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "old"},
		Status:     imagev1.ImageStreamStatus{DockerImageRepository: "elsewhere:5000/ns/old"},
	})
	r := &Recorder{Client: client.ImageV1(), ServerAddr: "registry.example.com:5000"}
	img := &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: "sha256:abc"}, DockerImageReference: "x@sha256:abc"}
	for _, repo := range []string{"ns/new", "ns/old"} {
		if err := r.RecordTag(ctx, repo, "latest", img); err != nil {
			t.Fatal(err)
		}
		_, name, _ := splitRepository(repo)
		is, err := client.ImageV1().ImageStreams("ns").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := "registry.example.com:5000/" + repo; is.Status.DockerImageRepository != want {
			t.Errorf("%s: dockerImageRepository %q, want %q", repo, is.Status.DockerImageRepository, want)
		}
		if len(is.Status.Tags) != 1 || is.Status.Tags[0].Items[0].Image != "sha256:abc" {
			t.Errorf("%s: tags %+v", repo, is.Status.Tags)
		}
	}

	// Without an address, a stream gets none (a host-less repository would mean Docker Hub).
	r = &Recorder{Client: client.ImageV1()}
	if err := r.RecordTag(ctx, "ns/bare", "latest", img); err != nil {
		t.Fatal(err)
	}
	is, err := client.ImageV1().ImageStreams("ns").Get(ctx, "bare", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if is.Status.DockerImageRepository != "" {
		t.Errorf("dockerImageRepository %q without an address", is.Status.DockerImageRepository)
	}
}
