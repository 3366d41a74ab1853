package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// TestPermissions runs the prune under real authentication and RBAC, as in OpenShift: the
// registry and the prune reach the image API through the kube-apiserver, which serves it by
// aggregation; both the kube-apiserver and the image API server behind it ask RBAC.
func TestPermissions(t *testing.T) {
	requireRegistryBinary(t)
	cluster := harness.StartClusterT(t)
	ctx := context.Background()
	if err := cluster.CreateNamespace(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	e := newClusterEnv(t, cluster)
	e.startRegistry()
	e.mustPush("ns/app:latest", image(t, "kept", "base", "kept-only"))
	gone := e.mustPush("ns/gone:latest", image(t, "gone", "base", "gone-only"))
	if err := e.images.ImageStreams("ns").Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mustDeleteImage(t, e, gone)
	e.startRegistry(harness.ReadOnlyEnv)
	before := e.snapshot()

	kubeconfig := func(token string) []string {
		p := filepath.Join(t.TempDir(), "kubeconfig")
		if err := cluster.KubeconfigFor(p, token); err != nil {
			t.Fatal(err)
		}
		return []string{"REGISTRY_OPENSHIFT_KUBECONFIG=" + p}
	}

	t.Run("identity without list rights", func(t *testing.T) {
		res := e.prune(kubeconfig(cluster.Tokens[harness.KubeNobodyUser]), "-prune=delete", noGrace)
		if res.ExitCode != 1 || res.Stdout != "" {
			t.Errorf("exit %d, stdout %q", res.ExitCode, res.Stdout)
		}
		for _, want := range []string{"nothing was deleted", "forbidden", "system:image-pruner"} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, res.Stderr)
			}
		}
		if e.snapshot() != before {
			t.Fatal("storage changed")
		}
	})

	t.Run("bad token", func(t *testing.T) {
		res := e.prune(kubeconfig("not-a-token"), "-prune=delete", noGrace)
		if res.ExitCode != 1 || res.Stdout != "" {
			t.Errorf("exit %d, stdout %q", res.ExitCode, res.Stdout)
		}
		for _, want := range []string{"nothing was deleted", "Unauthorized", "credentials were refused"} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, res.Stderr)
			}
		}
		if e.snapshot() != before {
			t.Fatal("storage changed")
		}
	})

	t.Run("registry service account granted system:image-pruner", func(t *testing.T) {
		// Step 4 of the procedure: grant the registry's service account the pruner role.
		if err := cluster.CreateImagePrunerRole(ctx); err != nil {
			t.Fatal(err)
		}
		registry := harness.KubeServiceAccount("openshift-image-registry", "registry")
		if err := cluster.BindImagePruner(ctx, registry); err != nil {
			t.Fatal(err)
		}
		token, err := cluster.CreateServiceAccountToken(ctx, "openshift-image-registry", "registry")
		if err != nil {
			t.Fatal(err)
		}
		res := e.prune(kubeconfig(token), "-prune=delete", noGrace)
		if res.ExitCode != 0 {
			t.Fatalf("exit %d:\n%s", res.ExitCode, res.Stderr)
		}
		// gone's manifest, config and own layer; the shared base stays.
		if !strings.HasPrefix(res.Stdout, "Deleted 3 blobs\n") ||
			!strings.Contains(res.Stdout, "Deleted 1 repositories\n") {
			t.Errorf("delete output:\n%s", res.Stdout)
		}
		if err := e.pullsIdentical("ns/app:latest", image(t, "kept", "base", "kept-only")); err != nil {
			t.Error(err)
		}
	})
}
