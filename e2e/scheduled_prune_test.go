package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hardprune/image-registry/deploy"
	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/schedule"
	"github.com/hardprune/image-registry/storage"
)

// The scheduled prune's settings in these tests: a run every few seconds, the newest revision
// of each tag kept, no age protecting an image or a blob, and the shortest lease.
const (
	pruneEvery         = 3 * time.Second
	pruneLeaseDuration = 5 * time.Second
	// finishedLine and failedLine start the status line of each scheduled run.
	finishedLine = "scheduled image prune finished: "
	failedLine   = "scheduled image prune failed: "
)

// scheduledWorld is a cluster where the registry runs as its own service account,
// openshift-image-registry/registry, bound to what a registry that prunes on a schedule needs
// and no more: harness.RegistryRole (record pushes), system:image-pruner (the prune's reads
// and deletions) and the Role of deploy/scheduled-pruner-rbac.yaml (its Lease).
type scheduledWorld struct {
	cluster *harness.Cluster
	kube    kubernetes.Interface
	// kubeconfig is the registry service account's.
	kubeconfig string
}

func newScheduledWorld(t *testing.T) *scheduledWorld {
	t.Helper()
	requireRegistryBinary(t)
	cluster := harness.StartClusterT(t)
	ctx := context.Background()
	if err := cluster.CreateNamespace(ctx, registryNamespace); err != nil {
		t.Fatal(err)
	}
	kube, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	registry := harness.KubeServiceAccount(registryNamespace, "registry")
	if err := cluster.CreateClusterRole(ctx, harness.RegistryClusterRole()); err != nil {
		t.Fatal(err)
	}
	if err := cluster.BindClusterRole(ctx, harness.RegistryRole, registry); err != nil {
		t.Fatal(err)
	}
	if err := cluster.BindImagePruner(ctx, registry); err != nil {
		t.Fatal(err)
	}
	applyManifests(t, cluster, "scheduled-pruner-rbac.yaml")
	for _, attrs := range []authorizationv1.ResourceAttributes{
		{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"},
		{Verb: "create", Group: "image.openshift.io", Resource: "images"},
		{Namespace: registryNamespace, Verb: "get", Group: "coordination.k8s.io", Resource: "leases"},
		{Namespace: registryNamespace, Verb: "create", Group: "coordination.k8s.io", Resource: "leases"},
		{Namespace: registryNamespace, Verb: "update", Group: "coordination.k8s.io", Resource: "leases"},
	} {
		if err := cluster.WaitForAccess(ctx, registry, attrs); err != nil {
			t.Fatal(err)
		}
	}
	token, err := cluster.CreateServiceAccountToken(ctx, registryNamespace, "registry")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "registry.kubeconfig")
	if err := cluster.KubeconfigFor(kubeconfig, token); err != nil {
		t.Fatal(err)
	}
	return &scheduledWorld{cluster: cluster, kube: kube, kubeconfig: kubeconfig}
}

// applyManifests creates the objects of a deploy/ file, as `oc apply -f` would new ones.
func applyManifests(t *testing.T, cluster *harness.Cluster, file string) {
	t.Helper()
	data, err := deploy.Manifests.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if errs := cluster.ApplyManifests(context.Background(), data, metav1.CreateOptions{}); len(errs) > 0 {
		t.Fatalf("%s: %v", file, errs)
	}
}

// images is a world of images for one subtest, its own storage directory included, reaching
// the image API as the cluster's admin (the test's view); the registries run as the service
// account.
func (sw *scheduledWorld) images(t *testing.T) *imagesWorld {
	t.Helper()
	return &imagesWorld{env: newClusterEnv(t, sw.cluster), cluster: sw.cluster}
}

// replica starts a registry over w's storage, as the service account, with the scheduled
// prune enabled on leaseName; host is its pod name (HOSTNAME), which starts its identity in
// the Lease.
func (sw *scheduledWorld) replica(
	t *testing.T,
	w *imagesWorld,
	host, leaseName string,
	suspend bool,
) *harness.Registry {
	t.Helper()
	env := []string{
		"HOSTNAME=" + host,
		"REGISTRY_OPENSHIFT_PRUNING_ENABLED=true",
		"REGISTRY_OPENSHIFT_PRUNING_SCHEDULE=@every " + pruneEvery.String(),
		fmt.Sprintf("REGISTRY_OPENSHIFT_PRUNING_SUSPEND=%t", suspend),
		"REGISTRY_OPENSHIFT_PRUNING_KEEPTAGREVISIONS=1",
		"REGISTRY_OPENSHIFT_PRUNING_KEEPYOUNGERTHAN=0s",
		// The blobs were all written a moment ago.
		"REGISTRY_OPENSHIFT_PRUNING_BLOBGRACEPERIOD=0s",
		"REGISTRY_OPENSHIFT_PRUNING_LEASENAME=" + leaseName,
		"REGISTRY_OPENSHIFT_PRUNING_LEASENAMESPACE=" + registryNamespace,
		"REGISTRY_OPENSHIFT_PRUNING_LEASEDURATION=" + pruneLeaseDuration.String(),
	}
	reg, err := harness.StartRegistry(context.Background(), t.TempDir(), nil, harness.RegistryOptions{
		Kubeconfig: sw.kubeconfig, StorageDir: w.storageDir, Env: env,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's log (%s):\n%s", host, reg.LogPath, harness.LogTail(reg.LogPath, 80))
		}
		_ = reg.Stop()
	})
	return reg
}

// lease reads the Lease; nil when it does not exist.
func (sw *scheduledWorld) lease(t *testing.T, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := sw.kube.CoordinationV1().Leases(registryNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// holder is the Lease's holder identity, "" when none.
func holder(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// podOf is the pod name an identity starts with (schedule.NewIdentity: <HOSTNAME>_<uuid>).
func podOf(identity string) string {
	pod, _, _ := strings.Cut(identity, "_")
	return pod
}

// statusLines are the lines of a registry's log that carry a scheduled run's status line
// starting with prefix.
func statusLines(t *testing.T, reg *harness.Registry, prefix string) []string {
	t.Helper()
	data, err := os.ReadFile(reg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// eventually polls cond every 200 ms until it returns nil, and fails with its last error after
// timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pruned checks that the tag's history is keep alone, and that the Images and the blobs of
// gone are deleted while keep's stay.
func (s *scenario) pruned(stream, tag, keep string, gone ...string) error {
	if h := s.history(stream, tag); !slices.Equal(h, []string{keep}) {
		return fmt.Errorf("%s/%s:%s history %v, want [%s]", s.ns, stream, tag, h, keep)
	}
	for _, l := range gone {
		if s.imageExists(l) {
			return fmt.Errorf("Image of %s still exists", l)
		}
		for _, b := range s.images[l].blobs {
			if s.w.blobExists(b) {
				return fmt.Errorf("blob %s of %s still stored", b, l)
			}
		}
	}
	if !s.imageExists(keep) {
		return fmt.Errorf("Image of %s is gone", keep)
	}
	for _, b := range s.images[keep].blobs {
		if !s.w.blobExists(b) {
			return fmt.Errorf("blob %s of %s is gone", b, keep)
		}
	}
	return nil
}

// lastPrune checks the Lease's record of the last run: succeeded, started at or after since,
// and a summary.
func lastPrune(l *coordinationv1.Lease, since time.Time) error {
	if l == nil {
		return errors.New("no Lease")
	}
	a := l.Annotations
	if a[schedule.AnnotationLastSucceeded] != "true" {
		return fmt.Errorf("last prune not a success: %q", a)
	}
	started, err := time.Parse(time.RFC3339, a[schedule.AnnotationLastTime])
	if err != nil {
		return fmt.Errorf("last prune time: %w", err)
	}
	if started.Before(since.Truncate(time.Second)) {
		return fmt.Errorf("last prune started %s, before %s", started, since)
	}
	if _, err := time.ParseDuration(a[schedule.AnnotationLastDuration]); err != nil {
		return fmt.Errorf("last prune duration: %w", err)
	}
	if !strings.HasPrefix(a[schedule.AnnotationLastResult], "deleted ") {
		return fmt.Errorf("last prune result %q, want a summary", a[schedule.AnnotationLastResult])
	}
	return nil
}

// TestScheduledPrune runs the scheduled ordinary prune (openshift.pruning) in registries over
// one filesystem storage, as the registry's service account bound to RegistryRole,
// system:image-pruner and the Lease Role of deploy/ only: suspended, it prunes nothing and
// takes no Lease; enabled in two replicas, the one holding the Lease prunes on the schedule
// (the tag histories, the Images and, with blobgraceperiod 0s, the blobs), the other does not;
// killed with SIGKILL, it leaves the Lease to expire, the other replica takes it and prunes;
// stopped with SIGTERM, that one releases it.
func TestScheduledPrune(t *testing.T) {
	sw := newScheduledWorld(t)

	t.Run("suspended", func(t *testing.T) {
		w := sw.images(t)
		const leaseName = "suspended-pruner"
		reg := sw.replica(t, w, "registry-s", leaseName, true)
		w.reg = reg
		eventually(t, 30*time.Second, "the suspended schedule's log line", func() error {
			if len(statusLines(t, reg, "scheduled image prune suspended")) == 0 {
				return errors.New("no line says the scheduled prune is suspended")
			}
			return nil
		})
		s := w.scenario("suspended")
		for _, l := range []string{"r1", "r2", "r3"} {
			s.push("app:latest", l)
		}
		// A few schedule periods: a running schedule would have pruned r1 and r2 by then.
		time.Sleep(4 * pruneEvery)
		if h := s.history("app", "latest"); !slices.Equal(h, []string{"r3", "r2", "r1"}) {
			t.Errorf("history %v, want [r3 r2 r1]: nothing pruned", h)
		}
		for _, l := range []string{"r1", "r2", "r3"} {
			if !s.imageExists(l) {
				t.Errorf("Image of %s pruned", l)
			}
			for _, b := range s.images[l].blobs {
				if !w.blobExists(b) {
					t.Errorf("blob %s of %s pruned", b, l)
				}
			}
		}
		if l := sw.lease(t, leaseName); l != nil {
			t.Errorf("the suspended schedule took the Lease: %+v", l.Spec)
		}
		if lines := append(statusLines(t, reg, finishedLine), statusLines(t, reg, failedLine)...); len(lines) > 0 {
			t.Errorf("the suspended schedule ran:\n%s", strings.Join(lines, "\n"))
		}
	})

	t.Run("one replica prunes, the other takes over", func(t *testing.T) {
		w := sw.images(t)
		const leaseName = "image-registry-pruner"
		replicas := map[string]*harness.Registry{
			"registry-a": sw.replica(t, w, "registry-a", leaseName, false),
			"registry-b": sw.replica(t, w, "registry-b", leaseName, false),
		}
		start := time.Now()
		s := w.scenario("scheduled")
		w.reg = replicas["registry-a"]
		for _, l := range []string{"r1", "r2", "r3"} {
			s.push("app:latest", l)
		}

		var first, second string // the pods holding the Lease, in turn
		eventually(t, time.Minute, "a replica holds the Lease and has pruned r1 and r2", func() error {
			l := sw.lease(t, leaseName)
			first = podOf(holder(l))
			if replicas[first] == nil {
				return fmt.Errorf("Lease holder %q, want one of the replicas", holder(l))
			}
			if err := s.pruned("app", "latest", "r3", "r1", "r2"); err != nil {
				return err
			}
			return lastPrune(l, start)
		})
		second = map[string]string{"registry-a": "registry-b", "registry-b": "registry-a"}[first]
		leader, other := replicas[first], replicas[second]
		if len(statusLines(t, leader, finishedLine)) == 0 {
			t.Errorf("%s holds the Lease, and its log has no %q line", first, finishedLine)
		}
		if !slices.ContainsFunc(statusLines(t, leader, finishedLine), func(l string) bool {
			return strings.Contains(l, "blob(s)")
		}) {
			t.Errorf("no run of %s deleted blobs:\n%s", first, strings.Join(statusLines(t, leader, finishedLine), "\n"))
		}
		if lines := append(statusLines(t, other, finishedLine), statusLines(t, other, failedLine)...); len(lines) > 0 {
			t.Errorf("%s, not holding the Lease, ran the prune:\n%s", second, strings.Join(lines, "\n"))
		}
		for _, l := range statusLines(t, leader, failedLine) {
			t.Logf("%s: a failed run (a push racing the prune?): %s", first, l)
		}
		transitions := leaseTransitions(sw.lease(t, leaseName))

		// Killed right after a run finished, so that it holds no storage prune lock (which a
		// killed run would leave to block the next runs for its TTL).
		runs := len(statusLines(t, leader, finishedLine))
		eventually(t, time.Minute, first+"'s next run", func() error {
			if n := len(statusLines(t, leader, finishedLine)); n <= runs {
				return fmt.Errorf("%d runs finished", n)
			}
			return nil
		})
		leader.Kill()
		killed := time.Now()
		if lock := filepath.Join(w.storageDir, storage.PruneLockPath()); fileExists(lock) {
			// The kill landed in the next run after all (a loaded machine): what an
			// administrator does rather than wait for the lock's TTL, -prune-force-unlock.
			t.Logf("%s was killed in a run: removing the storage prune lock it left", first)
			if err := os.Remove(lock); err != nil {
				t.Fatal(err)
			}
		}

		// The Lease expires unrenewed; the other replica, trying every sixth of it, takes it.
		eventually(t, pruneLeaseDuration+20*time.Second, second+" takes the Lease", func() error {
			l := sw.lease(t, leaseName)
			if podOf(holder(l)) != second {
				return fmt.Errorf("Lease holder %q", holder(l))
			}
			if leaseTransitions(l) <= transitions {
				return fmt.Errorf("Lease transitions %d, want more than %d", leaseTransitions(l), transitions)
			}
			return nil
		})
		took := time.Since(killed).Round(100 * time.Millisecond)
		t.Logf("%s took the Lease %s after %s was killed", second, took, first)

		w.reg = other
		for _, l := range []string{"r4", "r5"} {
			s.push("app:latest", l)
		}
		pushed := time.Now()
		eventually(t, time.Minute, second+" prunes r3 and r4", func() error {
			if err := s.pruned("app", "latest", "r5", "r3", "r4"); err != nil {
				return err
			}
			return lastPrune(sw.lease(t, leaseName), pushed)
		})
		if len(statusLines(t, other, finishedLine)) == 0 {
			t.Errorf("%s pruned, and its log has no %q line", second, finishedLine)
		}
		if err := w.pullsIdentical("scheduled/app:latest", s.images["r5"].img); err != nil {
			t.Error(err)
		}

		// Stopped, it releases the Lease (client-go's ReleaseOnCancel: no holder, a lease of
		// one second), and does not wait for it to expire.
		if err := other.Stop(); err != nil {
			t.Fatalf("stopping %s: %v", second, err)
		}
		l := sw.lease(t, leaseName)
		if h := holder(l); h != "" {
			t.Errorf("%s stopped, and the Lease still names %q", second, h)
		}
		if d := l.Spec.LeaseDurationSeconds; d == nil || *d != 1 {
			t.Errorf("released Lease's duration %v, want 1 s", d)
		}
		if err := lastPrune(l, pushed); err != nil {
			t.Errorf("the release lost the record of the last run: %v", err)
		}
	})
}

func leaseTransitions(l *coordinationv1.Lease) int32 {
	if l == nil || l.Spec.LeaseTransitions == nil {
		return 0
	}
	return *l.Spec.LeaseTransitions
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
