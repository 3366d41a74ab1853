package harness_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardprune/image-registry/e2e/harness"
)

// clusterConfigAs is a client configuration for the cluster's kube-apiserver URL (CA pinned)
// that authenticates with token.
func clusterConfigAs(t *testing.T, c *harness.Cluster, token string) *rest.Config {
	t.Helper()
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.BearerToken = token
	// As the product's client does.
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	return cfg
}

func clusterClientsAs(t *testing.T, c *harness.Cluster, token string) (kubernetes.Interface, imageclient.Interface) {
	t.Helper()
	cfg := clusterConfigAs(t, c, token)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	images, err := imageclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kube, images
}

// imageClientAs returns an image client for the image API server itself (not through the
// kube-apiserver) that authenticates with token.
func imageClientAs(t *testing.T, srv *harness.ImageAPIServer, token string) imageclient.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BearerToken = token
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	client, err := imageclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// mayI asks the cluster, as the client's own identity, whether it may do verb on resource
// of image.openshift.io (a SelfSubjectAccessReview, as the registry's access controller asks).
func mayI(t *testing.T, kube kubernetes.Interface, verb, resource string) bool {
	t.Helper()
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Group: "image.openshift.io", Resource: resource,
		},
	}}
	res, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), review,
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject access review (%s %s): %v", verb, resource, err)
	}
	return res.Status.Allowed
}

// TestClusterServesImageAPIThroughAggregation: one kube-apiserver URL and one token reach
// the core API, RBAC, access reviews and image.openshift.io, which the aggregator proxies to
// the image API server; RBAC bindings on image.openshift.io resources decide, for static
// and service-account tokens alike.
func TestClusterServesImageAPIThroughAggregation(t *testing.T) {
	start := time.Now()
	cluster := harness.StartClusterT(t)
	t.Logf("cluster started in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	adminKube, admin := clusterClientsAs(t, cluster, cluster.AdminToken)

	t.Run("discovery through the kube-apiserver", func(t *testing.T) {
		body, err := adminKube.Discovery().RESTClient().Get().AbsPath("/apis/image.openshift.io/v1").DoRaw(ctx)
		if err != nil {
			t.Fatalf("GET /apis/image.openshift.io/v1: %v", err)
		}
		var list metav1.APIResourceList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range list.APIResources {
			names = append(names, r.Name)
		}
		for _, want := range []string{"images", "imagestreams", "imagestreams/status"} {
			if !slices.Contains(names, want) {
				t.Errorf("resources %v lack %s", names, want)
			}
		}
		// /apis lists the group once the aggregator's discovery has caught up.
		deadline := time.Now().Add(30 * time.Second)
		for {
			groups, err := adminKube.Discovery().ServerGroups()
			if err == nil && slices.ContainsFunc(groups.Groups, func(g metav1.APIGroup) bool {
				return g.Name == "image.openshift.io" && g.PreferredVersion.Version == "v1"
			}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/apis does not list image.openshift.io/v1 after 30s (last error %v)", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	const ns = "team"
	name := digest("a1")
	t.Run("admin creates and lists images and image streams", func(t *testing.T) {
		if _, err := adminKube.CoreV1().Namespaces().Create(ctx,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := adminKube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("list pods: %v", err)
		}
		if _, err := admin.ImageV1().Images().Create(ctx, &imagev1.Image{
			ObjectMeta:           metav1.ObjectMeta{Name: name},
			DockerImageReference: "registry.example/team/app@" + name,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create image: %v", err)
		}
		stream := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
		if _, err := admin.ImageV1().ImageStreams(ns).Create(ctx, stream, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create image stream: %v", err)
		}
		images, err := admin.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if err != nil || len(images.Items) != 1 || images.Items[0].Name != name {
			t.Fatalf("list images: %v, %v; want [%s]", err, images, name)
		}
		streams, err := admin.ImageV1().ImageStreams(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil || len(streams.Items) != 1 || streams.Items[0].Namespace != ns {
			t.Fatalf("list image streams: %v, %v; want [%s/app]", err, streams, ns)
		}
		// The same objects, straight from the image API server: one store, two doors.
		direct := imageClientAs(t, cluster.ImageAPI, cluster.AdminToken)
		if _, err := direct.ImageV1().ImageStreams(ns).Get(ctx, "app", metav1.GetOptions{}); err != nil {
			t.Errorf("get the image stream from the image API server directly: %v", err)
		}
		// NamespaceLifecycle admission in the image API server asks kube for the namespace.
		_, err = admin.ImageV1().ImageStreams("absent").Create(ctx, stream, metav1.CreateOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("create an image stream in a namespace kube does not have: %v, want NotFound", err)
		}
	})

	t.Run("the image pruner role lists and may not create", func(t *testing.T) {
		if err := cluster.BindImagePruner(ctx, harness.KubeUser(harness.KubePrunerUser)); err != nil {
			t.Fatal(err)
		}
		_, images := clusterClientsAs(t, cluster, cluster.Tokens[harness.KubePrunerUser])
		list, err := images.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 1 || list.Items[0].Name != name {
			t.Fatalf("list images: %v, %v; want [%s]", err, list, name)
		}
		streams, err := images.ImageV1().ImageStreams(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil || len(streams.Items) != 1 || streams.Items[0].Name != "app" {
			t.Fatalf("list image streams: %v, %v; want [%s/app]", err, streams, ns)
		}
		_, err = images.ImageV1().Images().Create(ctx,
			&imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: digest("b2")}}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("create image: %v, want Forbidden", err)
		}
	})

	// A ClusterRole that grants reading images and nothing else.
	const readerRole = "e2e-image-reader"
	if _, err := adminKube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: readerRole},
		Rules: []rbacv1.PolicyRule{{
			Verbs: []string{"get", "list"}, APIGroups: []string{"image.openshift.io"}, Resources: []string{"images"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("a user without rights is forbidden until bound", func(t *testing.T) {
		kube, images := clusterClientsAs(t, cluster, cluster.Tokens[harness.KubeNobodyUser])
		if _, err := images.ImageV1().Images().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list images: %v, want Forbidden", err)
		}
		if _, err := images.ImageV1().Images().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("get image: %v, want Forbidden", err)
		}
		if mayI(t, kube, "list", "images") {
			t.Fatal("access review allows listing images before the binding")
		}

		if err := cluster.BindClusterRole(ctx, readerRole, harness.KubeUser(harness.KubeNobodyUser)); err != nil {
			t.Fatal(err)
		}
		waitUntilAllowed(t, kube, "list", "images")
		list, err := images.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 1 || list.Items[0].Name != name {
			t.Fatalf("list images after the binding: %v, %v; want [%s]", err, list, name)
		}
		if _, err := images.ImageV1().Images().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("get image after the binding: %v", err)
		}
		// The role reads images only.
		_, err = images.ImageV1().ImageStreams(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("list image streams: %v, want Forbidden", err)
		}
		err = images.ImageV1().Images().Delete(ctx, name, metav1.DeleteOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("delete image: %v, want Forbidden", err)
		}
		// The image API server decides by itself too (TokenReview, SubjectAccessReview), for a
		// token sent to it directly, where kube's own authorization is not in the way.
		direct := imageClientAs(t, cluster.ImageAPI, cluster.Tokens[harness.KubeNobodyUser])
		if _, err := direct.ImageV1().Images().List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list images directly: %v", err)
		}
		_, err = direct.ImageV1().ImageStreams(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("list image streams directly: %v, want Forbidden", err)
		}
	})

	t.Run("a service account token from the TokenRequest API", func(t *testing.T) {
		token, err := cluster.CreateServiceAccountToken(ctx, "pruning", "reader")
		if err != nil {
			t.Fatal(err)
		}
		kube, images := clusterClientsAs(t, cluster, token)
		if _, err := images.ImageV1().Images().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list images before the binding: %v, want Forbidden", err)
		}
		if err := cluster.BindClusterRole(ctx, readerRole, harness.KubeServiceAccount("pruning", "reader")); err != nil {
			t.Fatal(err)
		}
		waitUntilAllowed(t, kube, "list", "images")
		list, err := images.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 1 || list.Items[0].Name != name {
			t.Fatalf("list images: %v, %v; want [%s]", err, list, name)
		}
	})

	t.Run("a bad token is unauthorized", func(t *testing.T) {
		_, images := clusterClientsAs(t, cluster, "not-a-valid-token")
		if _, err := images.ImageV1().Images().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("list images: %v, want Unauthorized", err)
		}
		direct := imageClientAs(t, cluster.ImageAPI, "not-a-valid-token")
		if _, err := direct.ImageV1().Images().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("list images directly: %v, want Unauthorized", err)
		}
	})

	t.Run("identity headers count only from the aggregator", func(t *testing.T) {
		// What the aggregator sends, but without its front-proxy client certificate.
		cfg, err := clientcmd.BuildConfigFromFlags("", cluster.ImageAPI.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cfg.BearerToken = ""
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
				r = r.Clone(r.Context())
				r.Header.Set("X-Remote-User", harness.KubeAdminUser)
				r.Header.Set("X-Remote-Group", "system:masters")
				return rt.RoundTrip(r)
			})
		}
		forged, err := imageclient.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = forged.ImageV1().Images().List(ctx, metav1.ListOptions{})
		if !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err) {
			t.Errorf("list images with forged identity headers: %v, want Unauthorized or Forbidden", err)
		}
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// waitUntilAllowed polls the client's own access review until RBAC, which applies bindings
// from an informer, allows verb on resource of image.openshift.io (10 seconds at most).
func waitUntilAllowed(t *testing.T, kube kubernetes.Interface, verb, resource string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !mayI(t, kube, verb, resource); {
		if time.Now().After(deadline) {
			t.Fatalf("access review still denies %s %s after 10s", verb, resource)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkStartStandalone and BenchmarkStartCluster measure what a test pays to start its
// image API: etcd and the image API server in insecure mode, against etcd, the
// kube-apiserver and the image API server aggregated behind it (until both serve). Run:
// E2E_REQUIRED=1 go test -run '^$' -bench Start -benchtime 5x ./e2e/harness
func BenchmarkStartStandalone(b *testing.B) {
	harness.RequireBinaries(b)
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		etcd, err := harness.StartEtcd(context.Background(), dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		api, err := harness.StartImageAPIServer(context.Background(), dir, nil,
			harness.ImageAPIServerOptions{EtcdEndpoint: etcd.Endpoint})
		b.StopTimer()
		if api != nil {
			_ = api.Stop()
		}
		_ = etcd.Stop()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkStartCluster(b *testing.B) {
	harness.RequireKubeBinaries(b)
	// What the OpenShift workload APIs add to every cluster test's start-up.
	for _, bench := range []struct {
		name string
		opts harness.ClusterOptions
	}{
		{"with-workload-apis", harness.ClusterOptions{}},
		{"without-workload-apis", harness.ClusterOptions{NoOpenShiftWorkloadAPIs: true}},
	} {
		b.Run(bench.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				b.StartTimer()
				c, err := harness.StartCluster(context.Background(), dir, nil, bench.opts)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Stop()
				b.StartTimer()
			}
		})
	}
}
