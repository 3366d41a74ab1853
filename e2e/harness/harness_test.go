package harness_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardprune/image-registry/e2e/harness"
)

// digest returns a fake but well-formed sha256 digest.
func digest(seed string) string {
	return "sha256:" + strings.Repeat(seed, 64)[:64]
}

// TestImageAPIServer checks the real image API the e2e tests rely on: names
// that are digests (not DNS-1123 names), pagination, the create-with-status stream strategy, the
// status subresource and deletion.
func TestImageAPIServer(t *testing.T) {
	srv := harness.StartImageAPIT(t)

	cfg, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// As the product's client does.
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	client, err := imageclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	images := client.ImageV1().Images()
	ctx := context.Background()

	names := []string{digest("a1"), digest("b2"), digest("c3")}
	for i, name := range names {
		img := &imagev1.Image{
			ObjectMeta:                   metav1.ObjectMeta{Name: name},
			DockerImageReference:         "registry.example/ns1/app@" + name,
			DockerImageManifestMediaType: "application/vnd.docker.distribution.manifest.v2+json",
			DockerImageMetadata: runtime.RawExtension{Raw: []byte(
				`{"kind":"DockerImage","apiVersion":"image.openshift.io/1.0","Id":"` + digest(
					"f0",
				) + `","Size":` + fmt.Sprint(
					1000+i,
				) + `}`,
			)},
			DockerImageMetadataVersion: "1.0",
			DockerImageLayers: []imagev1.ImageLayer{
				{
					Name:      digest("d" + fmt.Sprint(i)),
					LayerSize: 100,
					MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip",
				},
				{Name: digest("e4"), LayerSize: 200, MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip"},
			},
		}
		if _, err := images.Create(ctx, img, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create image %s: %v", name, err)
		}
	}

	// Names are validated as path segments (digests pass, see above).
	bad := &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: "a/b"}}
	if _, err := images.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("create image named a/b: %v, want Invalid", err)
	}

	// Pagination: 3 images, 2 per page.
	var got []imagev1.Image
	pages := 0
	opts := metav1.ListOptions{Limit: 2}
	for {
		list, err := images.List(ctx, opts)
		if err != nil {
			t.Fatalf("list images (page %d): %v", pages+1, err)
		}
		pages++
		got = append(got, list.Items...)
		if pages == 1 {
			if list.Continue == "" || list.RemainingItemCount == nil || *list.RemainingItemCount != 1 {
				t.Errorf(
					"first page: continue %q, remainingItemCount %v; want a token and 1",
					list.Continue,
					list.RemainingItemCount,
				)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if pages != 2 || len(got) != 3 {
		t.Fatalf("got %d items in %d pages, want 3 in 2", len(got), pages)
	}
	for i, img := range got {
		if img.Name != names[i] {
			t.Errorf("item %d: %s, want %s", i, img.Name, names[i])
		}
		if len(img.DockerImageLayers) != 2 || img.DockerImageLayers[1].LayerSize != 200 {
			t.Errorf("item %d: layers %+v", i, img.DockerImageLayers)
		}
		if !strings.Contains(string(img.DockerImageMetadata.Raw), `"Size":100`) {
			t.Errorf("item %d: metadata %s", i, img.DockerImageMetadata.Raw)
		}
	}

	// An ImageStream created with its tag history keeps its status.
	streams := client.ImageV1().ImageStreams("ns1")
	created := metav1.Now()
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: imagev1.ImageStreamSpec{Tags: []imagev1.TagReference{{
			Name: "latest",
			From: &corev1.ObjectReference{Kind: "DockerImage", Name: "registry.example/ns1/app:latest"},
		}}},
		Status: imagev1.ImageStreamStatus{
			DockerImageRepository: "registry.example/ns1/app",
			Tags: []imagev1.NamedTagEventList{{
				Tag: "latest",
				Items: []imagev1.TagEvent{
					{
						Created:              created,
						DockerImageReference: "registry.example/ns1/app@" + names[1],
						Image:                names[1],
						Generation:           2,
					},
					{
						Created:              created,
						DockerImageReference: "registry.example/ns1/app@" + names[0],
						Image:                names[0],
						Generation:           1,
					},
				},
			}},
		},
	}
	_, err = streams.Create(ctx, is, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create image stream: %v", err)
	}
	is, err = streams.Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(is.Status.Tags) != 1 || len(is.Status.Tags[0].Items) != 2 || is.Status.Tags[0].Items[1].Image != names[0] {
		t.Fatalf("status not kept on create: %+v", is.Status)
	}

	// Updating the main resource keeps the status...
	is.Status.Tags = nil
	is.Spec.LookupPolicy.Local = true
	is, err = streams.Update(ctx, is, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update image stream: %v", err)
	}
	if len(is.Status.Tags) != 1 || !is.Spec.LookupPolicy.Local {
		t.Fatalf(
			"update: spec.lookupPolicy.local %v, status %+v; want true and the old status",
			is.Spec.LookupPolicy.Local,
			is.Status,
		)
	}

	// ...and /status changes status only.
	is.Status.Tags[0].Items = append(
		[]imagev1.TagEvent{
			{
				Created:              created,
				DockerImageReference: "registry.example/ns1/app@" + names[2],
				Image:                names[2],
				Generation:           3,
			},
		},
		is.Status.Tags[0].Items...)
	is.Spec.LookupPolicy.Local = false
	is, err = streams.UpdateStatus(ctx, is, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update image stream status: %v", err)
	}
	if len(is.Status.Tags[0].Items) != 3 || is.Status.Tags[0].Items[0].Image != names[2] ||
		!is.Spec.LookupPolicy.Local {
		t.Fatalf(
			"update status: spec.lookupPolicy.local %v, status %+v; want true and 3 items",
			is.Spec.LookupPolicy.Local,
			is.Status,
		)
	}

	// Delete.
	if err := images.Delete(ctx, names[2], metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete image: %v", err)
	}
	if _, err := images.Get(ctx, names[2], metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get deleted image: %v, want NotFound", err)
	}
	list, err := images.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("list after delete: %v, %d items; want 2", err, len(list.Items))
	}
}
