package e2e

import (
	"context"
	"io/fs"
	"slices"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hardprune/image-registry/deploy"
	"github.com/hardprune/image-registry/e2e/harness"
)

// registryNamespace is where every manifest of deploy/ goes, as OpenShift's registry.
const registryNamespace = "openshift-image-registry"

// TestDeployManifests applies every document of every deploy/*.yaml to a real kube-apiserver
// with a server-side dry run and strict field validation, so each is accepted as written (no
// misspelt or misplaced field, every reference well formed) without running anything; then it
// applies the RBAC files for real and checks, by access reviews, that the service accounts may
// do what the ordinary prune and the scheduled pruner do, and no more.
func TestDeployManifests(t *testing.T) {
	cluster := harness.StartClusterT(t)
	ctx := context.Background()
	if err := cluster.CreateNamespace(ctx, registryNamespace); err != nil {
		t.Fatal(err)
	}
	// apply creates each object of file, as `oc apply -f` would a new one.
	apply := func(t *testing.T, file string, opts metav1.CreateOptions) {
		t.Helper()
		data, err := deploy.Manifests.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range cluster.ApplyManifests(ctx, data, opts) {
			t.Errorf("%s: %v", file, err)
		}
	}

	files, err := fs.Glob(deploy.Manifests, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		deploy.PrunerRBAC, "pruner-cronjob.yaml", "scheduled-pruner-rbac.yaml", "hard-prune-job.yaml",
	} {
		if !slices.Contains(files, want) {
			t.Errorf("deploy/ lacks %s (has %v)", want, files)
		}
	}
	for _, file := range files {
		t.Run("dry run "+file, func(t *testing.T) {
			apply(t, file, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		})
	}

	kube, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the pruner may do what the ordinary prune does", func(t *testing.T) {
		apply(t, deploy.PrunerRBAC, metav1.CreateOptions{FieldValidation: "Strict"})
		pruner := harness.KubeServiceAccount(registryNamespace, "pruner")
		read := []string{"get", "list"}
		grants := []struct {
			verbs                        []string
			group, resource, subresource string
		}{
			{verbs: read, resource: "pods"},
			{verbs: read, resource: "replicationcontrollers"},
			{verbs: []string{"list"}, resource: "limitranges"},
			{verbs: read, group: "build.openshift.io", resource: "buildconfigs"},
			{verbs: read, group: "build.openshift.io", resource: "builds"},
			{verbs: read, group: "apps.openshift.io", resource: "deploymentconfigs"},
			{verbs: read, group: "batch", resource: "jobs"},
			{verbs: read, group: "batch", resource: "cronjobs"},
			{verbs: read, group: "apps", resource: "daemonsets"},
			{verbs: read, group: "apps", resource: "deployments"},
			{verbs: read, group: "apps", resource: "replicasets"},
			{verbs: read, group: "apps", resource: "statefulsets"},
			{verbs: []string{"get", "list", "watch"}, group: "image.openshift.io", resource: "images"},
			{verbs: []string{"get", "list", "watch"}, group: "image.openshift.io", resource: "imagestreams"},
			{verbs: []string{"delete"}, group: "image.openshift.io", resource: "images"},
			{verbs: []string{"update"}, group: "image.openshift.io", resource: "imagestreams", subresource: "status"},
		}
		for _, g := range grants {
			for _, verb := range g.verbs {
				attrs := authorizationv1.ResourceAttributes{
					Namespace: "some-project", Verb: verb, Group: g.group, Resource: g.resource, Subresource: g.subresource,
				}
				if err := cluster.WaitForAccess(ctx, pruner, attrs); err != nil {
					t.Error(err)
				}
			}
		}
		for _, denied := range []authorizationv1.ResourceAttributes{
			{Verb: "create", Group: "image.openshift.io", Resource: "images"},
			{Verb: "update", Group: "image.openshift.io", Resource: "images"},
			{Verb: "delete", Group: "image.openshift.io", Resource: "imagestreams"},
			{Verb: "update", Group: "image.openshift.io", Resource: "imagestreams"},
			{Verb: "get", Resource: "limitranges"},
			{Verb: "watch", Resource: "pods"},
			{Verb: "delete", Resource: "pods"},
			{Verb: "get", Resource: "secrets"},
		} {
			denied.Namespace = "some-project"
			if allowed(t, kube, "system:serviceaccount:"+registryNamespace+":pruner", denied) {
				t.Errorf("the pruner may %s %s.%s", denied.Verb, denied.Resource, denied.Group)
			}
		}
	})

	t.Run("the registry may hold the scheduled pruner's lease in its namespace only", func(t *testing.T) {
		apply(t, "scheduled-pruner-rbac.yaml", metav1.CreateOptions{FieldValidation: "Strict"})
		registry := harness.KubeServiceAccount(registryNamespace, "registry")
		lease := func(namespace, verb string) authorizationv1.ResourceAttributes {
			return authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: verb, Group: "coordination.k8s.io", Resource: "leases",
			}
		}
		for _, verb := range []string{"get", "create", "update"} {
			if err := cluster.WaitForAccess(ctx, registry, lease(registryNamespace, verb)); err != nil {
				t.Error(err)
			}
		}
		user := "system:serviceaccount:" + registryNamespace + ":registry"
		for _, denied := range []authorizationv1.ResourceAttributes{
			lease("kube-system", "get"), lease("some-project", "update"), lease(registryNamespace, "delete"),
		} {
			if allowed(t, kube, user, denied) {
				t.Errorf("the registry may %s leases in %s", denied.Verb, denied.Namespace)
			}
		}
	})
}

// create creates o through the dynamic client, finding its resource with mapper. A namespaced
// object must name its namespace: applied without one it would land in the applier's current
// namespace.
// allowed asks a SubjectAccessReview whether user may do attrs.
func allowed(t *testing.T, kube kubernetes.Interface, user string, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	review, err := kube.AuthorizationV1().SubjectAccessReviews().Create(context.Background(),
		&authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, ResourceAttributes: &attrs,
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return review.Status.Allowed
}
