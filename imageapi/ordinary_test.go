package imageapi

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/hardprune/image-registry/prune/ordinary"
)

func TestReduceOrdinaryImage(t *testing.T) {
	img := image(d("m").String(), d("l1").String())
	img.CreationTimestamp = metav1.NewTime(longAgo)
	img.Annotations = map[string]string{ManagedAnnotation: "true"}
	img.DockerImageMetadata = runtime.RawExtension{
		Raw: []byte(`{"kind":"DockerImage","Id":"` + d("cfg").String() + `","Size":123456789}`),
	}
	got, err := ReduceOrdinaryImage(&img)
	if err != nil {
		t.Fatal(err)
	}
	if got.Manifest != d("m") || got.Config != d("cfg") || len(got.Layers) != 1 ||
		!got.Created.Equal(longAgo) || !got.Managed || got.Size != 123456789 {
		t.Errorf("got %+v", got)
	}

	// Managed only by the annotation, as oc's --all=false reads it: a local reference is not
	// enough.
	imported := image(d("i").String())
	imported.DockerImageReference = "ns/app@" + d("i").String()
	imported.Annotations = map[string]string{ManagedAnnotation: "false"}
	if got, err := ReduceOrdinaryImage(&imported); err != nil || got.Managed || got.Size != 0 {
		t.Errorf("imported: %+v, %v", got, err)
	}

	for name, meta := range map[string]string{
		"string size":   `{"Size":"12"}`,
		"negative size": `{"Size":-1}`,
		"fraction":      `{"Size":1.5}`,
	} {
		bad := image(d("b").String())
		bad.DockerImageMetadata = runtime.RawExtension{Raw: []byte(meta)}
		if _, err := ReduceOrdinaryImage(&bad); !errors.Is(err, ErrMalformed) ||
			!strings.Contains(err.Error(), d("b").String()) {
			t.Errorf("%s: err = %v, want ErrMalformed naming the image", name, err)
		}
		// The hard prune does not read the size, and does not fail on it.
		if _, err := ReduceImage(&bad); err != nil {
			t.Errorf("%s: ReduceImage: %v", name, err)
		}
	}
	badName := image("nope")
	if _, err := ReduceOrdinaryImage(&badName); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad name: err = %v", err)
	}
}

func stream(ns, name string, tags ...imagev1.NamedTagEventList) *imagev1.ImageStream {
	is := &imagev1.ImageStream{ObjectMeta: objectMeta(ns, name)}
	is.ResourceVersion = "7"
	is.Status.Tags = tags
	return is
}

func items(images ...string) []imagev1.TagEvent {
	var out []imagev1.TagEvent
	for i, img := range images {
		e := imagev1.TagEvent{Created: metav1.NewTime(longAgo.Add(-hours(i))), Image: img}
		if img != "" {
			e.DockerImageReference = "registry:5000/ns/app@" + img
		} else {
			e.DockerImageReference = "quay.io/org/app:1"
		}
		out = append(out, e)
	}
	return out
}

// TestReduceOrdinaryStream: identity, age, version, every tag (empty ones too) and its items
// with their positions in the object, reference items left out.
func TestReduceOrdinaryStream(t *testing.T) {
	is := stream("ns", "app",
		imagev1.NamedTagEventList{Tag: "latest", Items: items(d("a").String(), "", d("b").String())},
		imagev1.NamedTagEventList{Tag: "empty"},
	)
	got, err := ReduceOrdinaryStream(is)
	if err != nil {
		t.Fatal(err)
	}
	want := ordinary.Stream{
		Namespace: "ns", Name: "app", Created: longAgo, ResourceVersion: "7",
		Tags: []ordinary.Tag{
			{Name: "latest", Items: []ordinary.Item{
				{Image: d("a"), Created: longAgo, Raw: 0},
				{Image: d("b"), Created: longAgo.Add(-hours(2)), Raw: 2},
			}},
			{Name: "empty", Items: []ordinary.Item{}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	is.Status.Tags[0].Items[2].Image = "garbage"
	if _, err := ReduceOrdinaryStream(is); !errors.Is(err, ErrMalformed) ||
		!strings.Contains(err.Error(), `image stream ns/app tag "latest" item 2`) {
		t.Errorf("err = %v", err)
	}
}

// TestEachOrdinary: Images always all; streams of the namespace asked for, or all.
func TestEachOrdinary(t *testing.T) {
	a, b := image(d("a").String()), image(d("b").String())
	f := newFakeCluster(
		&a, &b,
		stream("shop", "web", imagev1.NamedTagEventList{Tag: "latest", Items: items(d("a").String())}),
		stream("dev", "tool"),
	)
	var images []string
	if err := f.EachOrdinaryImage(context.Background(), func(img ordinary.Image) error {
		images = append(images, img.Manifest.String())
		return nil
	}); err != nil || len(images) != 2 {
		t.Errorf("images %v, err %v", images, err)
	}
	for ns, want := range map[string]string{"": "dev/tool shop/web", "shop": "shop/web"} {
		var repos []string
		err := f.EachOrdinaryStream(context.Background(), ns, func(s ordinary.Stream) error {
			repos = append(repos, s.Repository())
			return nil
		})
		if err != nil || strings.Join(repos, " ") != want {
			t.Errorf("namespace %q: streams %v, err %v", ns, repos, err)
		}
	}
}

// hours is i hours.
func hours(i int) time.Duration { return time.Duration(i) * time.Hour }
