package imageapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	"github.com/openshift/client-go/image/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"
)

func d(s string) digest.Digest { return digest.FromString(s) }

func image(name string, layers ...string) imagev1.Image {
	img := imagev1.Image{
		ObjectMeta:                   metav1.ObjectMeta{Name: name},
		DockerImageManifestMediaType: "application/vnd.docker.distribution.manifest.v2+json",
	}
	for _, l := range layers {
		img.DockerImageLayers = append(img.DockerImageLayers, imagev1.ImageLayer{Name: l, LayerSize: 1})
	}
	return img
}

func TestReduceImage(t *testing.T) {
	img := image(d("m").String(), d("l1").String(), d("l2").String())
	img.DockerImageMetadata = runtime.RawExtension{
		Raw: []byte(`{"kind":"DockerImage","Id":"` + d("cfg").String() + `"}`),
	}
	got, err := ReduceImage(&img)
	if err != nil {
		t.Fatal(err)
	}
	if got.Manifest != d("m") || got.Config != d("cfg") || len(got.Layers) != 2 || got.Layers[1] != d("l2") ||
		got.Incomplete {
		t.Errorf("got %+v", got)
	}
	// Schema 2 without a config digest: a blob its manifest uses is unknown.
	noConfig := image(d("m").String(), d("l1").String())
	if got, err := ReduceImage(&noConfig); err != nil || got.Config != "" || !got.Incomplete {
		t.Errorf("schema 2 without a config digest: got %+v, %v; want Incomplete", got, err)
	}

	list := imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: d("idx").String()},
		DockerImageManifestMediaType: "application/vnd.oci.image.index.v1+json",
		DockerImageManifests:         []imagev1.ImageManifest{{Digest: d("c1").String()}, {Digest: d("c2").String()}}}
	got, err = ReduceImage(&list)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Children) != 2 || got.Children[0] != d("c1") || got.Config != "" || got.Incomplete {
		t.Errorf("list: got %+v", got)
	}

	// Schema 1 images have an Id that is not a digest, and no config blob.
	s1 := image(d("s1").String())
	s1.DockerImageManifestMediaType = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	s1.DockerImageMetadata = runtime.RawExtension{Raw: []byte(`{"Id":"0123abcd"}`)}
	if got, err := ReduceImage(&s1); err != nil || got.Config != "" || got.Incomplete {
		t.Errorf("schema 1: got %+v, %v", got, err)
	}
}

func TestReduceImageMalformed(t *testing.T) {
	badName := image("not-a-digest")
	badLayer := image(d("m").String(), "sha256:short")
	badChild := image(d("m").String())
	badChild.DockerImageManifests = []imagev1.ImageManifest{{Digest: "nope"}}
	badConfig := image(d("m").String())
	badConfig.DockerImageMetadata = runtime.RawExtension{Raw: []byte(`{"Id":"nope"}`)}
	badJSON := image(d("m").String())
	badJSON.DockerImageMetadata = runtime.RawExtension{Raw: []byte(`{`)}
	for name, img := range map[string]imagev1.Image{"name": badName, "layer": badLayer, "child": badChild, "config": badConfig, "json": badJSON} {
		if _, err := ReduceImage(&img); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestReduceStream(t *testing.T) {
	is := imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}}
	is.Status.Tags = []imagev1.NamedTagEventList{
		{Tag: "latest", Items: []imagev1.TagEvent{{Image: d("m1").String()}, {Image: d("m0").String()}}},
		{Tag: "v1", Items: []imagev1.TagEvent{{Image: d("m2").String()}}},
	}
	got, err := ReduceStream(&is)
	if err != nil {
		t.Fatal(err)
	}
	if got.Repository != "ns/app" || len(got.Manifests) != 3 || got.Manifests[1] != d("m0") {
		t.Errorf("got %+v", got)
	}
	is.Status.Tags[1].Items[0].Image = "garbage"
	if _, err := ReduceStream(&is); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `tag "v1"`) {
		t.Errorf("err = %v, want ErrMalformed naming the tag", err)
	}
}

// pagedImages serves the images two a page; failOn says which page numbers fail, and with what.
func pagedImages(images []imagev1.Image, failOn map[int]error, calls *int) clienttesting.ReactionFunc {
	return func(action clienttesting.Action) (bool, runtime.Object, error) {
		*calls++
		opts := action.(clienttesting.ListActionImpl).GetListOptions()
		if opts.Limit != 2 {
			return true, nil, errors.New("expected a page size of 2")
		}
		page := 0
		if opts.Continue != "" {
			page = int(opts.Continue[0] - '0')
		}
		if err, ok := failOn[*calls]; ok {
			return true, nil, err
		}
		list := &imagev1.ImageList{}
		end := min(page*2+2, len(images))
		list.Items = images[page*2 : end]
		if end < len(images) {
			list.Continue = string(rune('0' + page + 1))
		}
		return true, list, nil
	}
}

func TestSourcePagesAndRestartsOnExpiry(t *testing.T) {
	var images []imagev1.Image
	for _, n := range []string{"a", "b", "c", "e", "f"} {
		images = append(images, image(d(n).String(), d(n+"-layer").String()))
	}
	stream := imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}}
	stream.Status.Tags = []imagev1.NamedTagEventList{
		{Tag: "latest", Items: []imagev1.TagEvent{{Image: d("a").String()}}},
	}

	expired := apierrors.NewResourceExpired("continue token expired")
	calls := 0
	client := fake.NewSimpleClientset(&stream)
	// Calls 1 and 2 read pages 0 and 1; call 3 (page 2) expires; calls 4-6 read all three again.
	client.PrependReactor("list", "images", pagedImages(images, map[int]error{3: expired}, &calls))
	src := &Lister{Client: client.ImageV1(), PageSize: 2}
	refs, err := src.References(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if calls != 6 {
		t.Errorf("list calls = %d, want 6 (3 pages, the third expired, then 3 again)", calls)
	}
	for _, n := range []string{"a", "b", "c", "e", "f"} {
		if !refs.Blobs.Has(d(n)) || !refs.Blobs.Has(d(n+"-layer")) {
			t.Errorf("image %s missing from the references", n)
		}
	}
	if rr := refs.Repository("ns/app"); rr == nil || !rr.Blobs.Has(d("a-layer")) {
		t.Errorf("ns/app references: %+v", rr)
	}
}

func TestSourceFailsWholeOnErrors(t *testing.T) {
	images := []imagev1.Image{image(d("a").String()), image(d("b").String()), image(d("c").String())}
	tests := map[string]struct {
		err    error
		errHas string
	}{
		"forbidden": {
			apierrors.NewForbidden(
				schema.GroupResource{Group: "image.openshift.io", Resource: "images"},
				"",
				errors.New("no"),
			),
			"system:image-pruner",
		},
		"unauthorized":   {apierrors.NewUnauthorized("bad token"), "credentials were refused"},
		"server error":   {apierrors.NewInternalError(errors.New("etcd fell over")), "etcd fell over"},
		"always expired": {apierrors.NewResourceExpired("expired"), "kept expiring"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			calls := 0
			client := fake.NewSimpleClientset()
			failOn := map[int]error{2: tt.err}
			if name == "always expired" {
				failOn = map[int]error{2: tt.err, 4: tt.err, 6: tt.err}
			}
			client.PrependReactor("list", "images", pagedImages(images, failOn, &calls))
			refs, err := (&Lister{Client: client.ImageV1(), PageSize: 2}).References(context.Background())
			if err == nil || refs != nil {
				t.Fatalf("got refs=%v err=%v, want an error and no references", refs, err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want it to say %q", err, tt.errHas)
			}
		})
	}
}

// TestReduceInternsDigests: the reductions keep one copy of a digest however many objects
// name it (a layer shared by Images, a manifest named by a history item), not the copy each
// decoded object brought.
func TestReduceInternsDigests(t *testing.T) {
	// Fresh strings, as decoding gives each object its own.
	fresh := func(d digest.Digest) string { return strings.Clone(string(d)) }
	a, err := ReduceImage(ptrTo(image(fresh(d("a")), fresh(d("base")), fresh(d("own a")))))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReduceImage(ptrTo(image(fresh(d("b")), fresh(d("base")), fresh(d("own b")))))
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(string(a.Layers[0])) != unsafe.StringData(string(b.Layers[0])) {
		t.Error("the shared layer is kept twice")
	}
	is := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}}
	is.Status.Tags = []imagev1.NamedTagEventList{{Tag: "latest", Items: []imagev1.TagEvent{{Image: fresh(d("a"))}}}}
	s, err := ReduceOrdinaryStream(is)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(string(s.Tags[0].Items[0].Image)) != unsafe.StringData(string(a.Manifest)) {
		t.Error("the history item keeps its own copy of the manifest digest")
	}
}

func ptrTo[T any](v T) *T { return &v }
