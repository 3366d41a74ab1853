package harness_test

import (
	"context"
	"testing"

	"github.com/hardprune/image-registry/e2e/harness"
	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
)

// imageClientAs returns an image client for srv that authenticates with token.
func imageClientAs(t *testing.T, srv *harness.ImageAPIServer, token string) imageclient.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BearerToken = token
	// As the product's client does.
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	client, err := imageclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestKubeAPIServerDelegatedAuth runs the image API server with
// authentication (TokenReview) and authorization (SubjectAccessReview, RBAC)
// delegated to a real kube-apiserver and checks who may list images.
func TestKubeAPIServerDelegatedAuth(t *testing.T) {
	kube, img := harness.StartDelegatedImageAPIT(t)
	ctx := context.Background()

	// Seed as admin (system:masters): an image and a stream, whose namespace
	// must exist in kube (NamespaceLifecycle admission).
	admin := imageClientAs(t, img, kube.AdminToken)
	name := digest("a1")
	if _, err := admin.ImageV1().Images().Create(ctx, &imagev1.Image{
		ObjectMeta:           metav1.ObjectMeta{Name: name},
		DockerImageReference: "registry.example/ns1/app@" + name,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin: create image: %v", err)
	}
	stream := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
	if _, err := admin.ImageV1().ImageStreams("ns1").Create(ctx, stream, metav1.CreateOptions{}); !apierrors.IsNotFound(
		err,
	) {
		t.Errorf("admin: create image stream in a namespace kube does not have: %v, want NotFound", err)
	}
	if err := kube.CreateNamespace(ctx, "ns1"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ImageV1().ImageStreams("ns1").Create(ctx, stream, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin: create image stream: %v", err)
	}

	if err := kube.BindImagePruner(ctx, harness.KubeUser(harness.KubePrunerUser)); err != nil {
		t.Fatal(err)
	}

	t.Run("pruner user may list", func(t *testing.T) {
		c := imageClientAs(t, img, kube.Tokens[harness.KubePrunerUser])
		images, err := c.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if err != nil || len(images.Items) != 1 || images.Items[0].Name != name {
			t.Fatalf("list images: %v, %v; want [%s]", err, images, name)
		}
		streams, err := c.ImageV1().ImageStreams(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil || len(streams.Items) != 1 || streams.Items[0].Name != "app" {
			t.Fatalf("list image streams: %v, %v; want [ns1/app]", err, streams)
		}
		// The role does not allow creating images.
		_, err = c.ImageV1().
			Images().
			Create(ctx, &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: digest("b2")}}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("create image: %v, want Forbidden", err)
		}
	})

	t.Run("nobody is forbidden", func(t *testing.T) {
		c := imageClientAs(t, img, kube.Tokens[harness.KubeNobodyUser])
		_, err := c.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("list images: %v, want Forbidden", err)
		}
	})

	t.Run("bad token is unauthorized", func(t *testing.T) {
		c := imageClientAs(t, img, "not-a-valid-token")
		_, err := c.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if !apierrors.IsUnauthorized(err) {
			t.Fatalf("list images: %v, want Unauthorized", err)
		}
	})

	t.Run("service account with a bound token may list", func(t *testing.T) {
		token, err := kube.CreateServiceAccountToken(ctx, "pruning", "image-pruner")
		if err != nil {
			t.Fatal(err)
		}
		if err := kube.BindImagePruner(ctx, harness.KubeServiceAccount("pruning", "image-pruner")); err != nil {
			t.Fatal(err)
		}
		images, err := imageClientAs(t, img, token).ImageV1().Images().List(ctx, metav1.ListOptions{})
		if err != nil || len(images.Items) != 1 || images.Items[0].Name != name {
			t.Fatalf("list images: %v, %v; want [%s]", err, images, name)
		}

		// Another account of the namespace, not bound: authenticated, not authorized.
		other, err := kube.CreateServiceAccountToken(ctx, "pruning", "other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := imageClientAs(t, img, other).ImageV1().Images().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(
			err,
		) {
			t.Fatalf("unbound service account: list images: %v, want Forbidden", err)
		}
	})
}
