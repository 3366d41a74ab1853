package harness_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	buildv1 "github.com/openshift/api/build/v1"
	appsclient "github.com/openshift/client-go/apps/clientset/versioned"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// ref is an image reference as the ordinary prune reads them: host/namespace/name and a tag or
// digest.
func ref(name string) string {
	return "image-registry.openshift-image-registry.svc:5000/seeded/" + name
}

// podImages describes a pod spec's images for comparison: containers, then init containers.
func podImages(spec corev1.PodSpec) string {
	var images []string
	for _, c := range spec.Containers {
		images = append(images, c.Image)
	}
	for _, c := range spec.InitContainers {
		images = append(images, "init "+c.Image)
	}
	return strings.Join(images, ", ")
}

// buildFrom describes a build strategy's from for comparison.
func buildFrom(s buildv1.BuildStrategy) string {
	var from *corev1.ObjectReference
	switch {
	case s.SourceStrategy != nil:
		from = &s.SourceStrategy.From
	case s.DockerStrategy != nil:
		from = s.DockerStrategy.From
	case s.CustomStrategy != nil:
		from = &s.CustomStrategy.From
	}
	if from == nil {
		return string(s.Type) + " without from"
	}
	return string(s.Type) + " " + from.Kind + " " + from.Namespace + "/" + from.Name
}

// TestCreateReferrer seeds every kind of object the ordinary prune reads image references from
// into a real cluster, and reads each back through the typed clients a prune uses: pods with
// each phase, every kind with a pod template, DeploymentConfigs, BuildConfigs and Builds (served
// from the cluster's CustomResourceDefinitions) with each kind of from, and an image LimitRange.
func TestCreateReferrer(t *testing.T) {
	cluster := harness.StartClusterT(t)
	ctx := context.Background()
	const ns = "seeded"

	// want maps "Kind/name" to what reading it back must show.
	want := map[string]string{}
	create := func(kind harness.ReferrerKind, name string, spec harness.ReferrerSpec, shows string) {
		t.Helper()
		if err := cluster.CreateReferrer(ctx, ns, kind, name, spec); err != nil {
			t.Fatal(err)
		}
		want[string(kind)+"/"+name] = shows
	}
	for _, phase := range []corev1.PodPhase{corev1.PodRunning, corev1.PodPending, corev1.PodSucceeded, corev1.PodFailed} {
		name := "pod-" + strings.ToLower(string(phase))
		create(harness.ReferrerPod, name, harness.ReferrerSpec{
			Images: []string{ref(name + ":latest")}, InitImages: []string{ref(name + "-init:v1")}, PodPhase: phase,
		}, string(phase)+": "+ref(name+":latest")+", init "+ref(name+"-init:v1"))
	}
	// No phase: the Pending of every new pod.
	create(harness.ReferrerPod, "pod-new", harness.ReferrerSpec{Images: []string{ref("new:latest")}},
		"Pending: "+ref("new:latest"))
	templateKinds := []harness.ReferrerKind{
		harness.ReferrerReplicationController, harness.ReferrerReplicaSet, harness.ReferrerDeployment,
		harness.ReferrerDaemonSet, harness.ReferrerStatefulSet, harness.ReferrerJob, harness.ReferrerCronJob,
		harness.ReferrerDeploymentConfig,
	}
	for _, kind := range templateKinds {
		name := strings.ToLower(string(kind))
		digestRef := ref(name + "@" + digest("ab"))
		create(kind, name, harness.ReferrerSpec{
			Images: []string{ref(name + ":latest"), digestRef}, InitImages: []string{ref(name + "-init:v1")},
		}, ref(name+":latest")+", "+digestRef+", init "+ref(name+"-init:v1"))
	}
	create(harness.ReferrerBuildConfig, "from-docker-image", harness.ReferrerSpec{
		From: &corev1.ObjectReference{Kind: "DockerImage", Name: ref("builder@" + digest("cd"))},
	}, "Source DockerImage /"+ref("builder@"+digest("cd")))
	create(harness.ReferrerBuild, "from-stream-image", harness.ReferrerSpec{
		From:          &corev1.ObjectReference{Kind: "ImageStreamImage", Namespace: "other", Name: "base@" + digest("ef")},
		BuildStrategy: buildv1.DockerBuildStrategyType,
	}, "Docker ImageStreamImage other/base@"+digest("ef"))
	create(harness.ReferrerBuild, "from-stream-tag", harness.ReferrerSpec{
		From:          &corev1.ObjectReference{Kind: "ImageStreamTag", Name: "base:latest"},
		BuildStrategy: buildv1.CustomBuildStrategyType,
	}, "Custom ImageStreamTag /base:latest")
	create(harness.ReferrerLimitRange, "images", harness.ReferrerSpec{MaxImageStorage: "1Gi"}, "openshift.io/Image max storage 1Gi")

	kube, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	apps, err := appsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	builds, err := buildclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	list := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("listing %s: %v", what, err)
		}
	}
	opts := metav1.ListOptions{}
	pods, err := kube.CoreV1().Pods(ns).List(ctx, opts)
	list("pods", err)
	for _, o := range pods.Items {
		have["Pod/"+o.Name] = string(o.Status.Phase) + ": " + podImages(o.Spec)
	}
	rcs, err := kube.CoreV1().ReplicationControllers(ns).List(ctx, opts)
	list("replication controllers", err)
	for _, o := range rcs.Items {
		have["ReplicationController/"+o.Name] = podImages(o.Spec.Template.Spec)
	}
	rss, err := kube.AppsV1().ReplicaSets(ns).List(ctx, opts)
	list("replica sets", err)
	for _, o := range rss.Items {
		have["ReplicaSet/"+o.Name] = podImages(o.Spec.Template.Spec)
	}
	deployments, err := kube.AppsV1().Deployments(ns).List(ctx, opts)
	list("deployments", err)
	for _, o := range deployments.Items {
		have["Deployment/"+o.Name] = podImages(o.Spec.Template.Spec)
	}
	daemonSets, err := kube.AppsV1().DaemonSets(ns).List(ctx, opts)
	list("daemon sets", err)
	for _, o := range daemonSets.Items {
		have["DaemonSet/"+o.Name] = podImages(o.Spec.Template.Spec)
	}
	statefulSets, err := kube.AppsV1().StatefulSets(ns).List(ctx, opts)
	list("stateful sets", err)
	for _, o := range statefulSets.Items {
		have["StatefulSet/"+o.Name] = podImages(o.Spec.Template.Spec)
	}
	jobs, err := kube.BatchV1().Jobs(ns).List(ctx, opts)
	list("jobs", err)
	for _, o := range jobs.Items {
		have["Job/"+o.Name] = podImages(o.Spec.Template.Spec)
	}
	cronJobs, err := kube.BatchV1().CronJobs(ns).List(ctx, opts)
	list("cron jobs", err)
	for _, o := range cronJobs.Items {
		have["CronJob/"+o.Name] = podImages(o.Spec.JobTemplate.Spec.Template.Spec)
	}
	// Cluster-wide, as the prune lists them.
	dcs, err := apps.AppsV1().DeploymentConfigs(metav1.NamespaceAll).List(ctx, opts)
	list("deployment configs", err)
	for _, o := range dcs.Items {
		have["DeploymentConfig/"+o.Name] = podImages(o.Spec.Template.Spec)
	}
	bcs, err := builds.BuildV1().BuildConfigs(metav1.NamespaceAll).List(ctx, opts)
	list("build configs", err)
	for _, o := range bcs.Items {
		have["BuildConfig/"+o.Name] = buildFrom(o.Spec.Strategy)
	}
	bs, err := builds.BuildV1().Builds(metav1.NamespaceAll).List(ctx, opts)
	list("builds", err)
	for _, o := range bs.Items {
		have["Build/"+o.Name] = buildFrom(o.Spec.Strategy)
	}
	limits, err := kube.CoreV1().LimitRanges(ns).List(ctx, opts)
	list("limit ranges", err)
	for _, o := range limits.Items {
		for _, item := range o.Spec.Limits {
			storage := item.Max[corev1.ResourceStorage]
			have["LimitRange/"+o.Name] = string(item.Type) + " max storage " + storage.String()
		}
	}

	for _, key := range slices.Sorted(maps.Keys(want)) {
		if have[key] != want[key] {
			t.Errorf("%s reads back as %q, want %q", key, have[key], want[key])
		}
	}
	for _, key := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[key]; !ok {
			t.Errorf("%s was not created here: %q", key, have[key])
		}
	}

	t.Run("a spec with fields its kind does not take is refused", func(t *testing.T) {
		for _, c := range []struct {
			kind harness.ReferrerKind
			spec harness.ReferrerSpec
		}{
			{harness.ReferrerPod, harness.ReferrerSpec{}},
			{harness.ReferrerDeployment, harness.ReferrerSpec{Images: []string{"a"}, PodPhase: corev1.PodRunning}},
			{harness.ReferrerBuild, harness.ReferrerSpec{Images: []string{"a"}}},
			{harness.ReferrerBuild, harness.ReferrerSpec{
				From: &corev1.ObjectReference{Kind: "DockerImage", Name: "a"}, BuildStrategy: "JenkinsPipeline",
			}},
			{harness.ReferrerLimitRange, harness.ReferrerSpec{MaxImageStorage: "lots"}},
			{"Secret", harness.ReferrerSpec{}},
		} {
			if err := cluster.CreateReferrer(ctx, ns, c.kind, "refused", c.spec); err == nil {
				t.Errorf("%s %+v was created", c.kind, c.spec)
			}
		}
	})
}

// TestClusterWithoutOpenShiftWorkloadAPIs checks the option for tests of a cluster that does
// not serve DeploymentConfigs, BuildConfigs and Builds, as Kubernetes without OpenShift.
func TestClusterWithoutOpenShiftWorkloadAPIs(t *testing.T) {
	cluster := harness.StartClusterWithOptionsT(t, harness.ClusterOptions{NoOpenShiftWorkloadAPIs: true})
	ctx := context.Background()
	kube, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	for _, gv := range []string{"apps.openshift.io/v1", "build.openshift.io/v1"} {
		if _, err := kube.Discovery().ServerResourcesForGroupVersion(gv); !apierrors.IsNotFound(err) {
			t.Errorf("discovery of %s: %v, want NotFound", gv, err)
		}
	}
	err = cluster.CreateReferrer(ctx, "plain", harness.ReferrerDeploymentConfig, "app",
		harness.ReferrerSpec{Images: []string{ref("app:latest")}})
	if !apierrors.IsNotFound(err) {
		t.Errorf("create a deployment config: %v, want NotFound", err)
	}
	// Kubernetes' own referrers are there.
	if err := cluster.CreateReferrer(ctx, "plain", harness.ReferrerDeployment, "app",
		harness.ReferrerSpec{Images: []string{ref("app:latest")}}); err != nil {
		t.Error(err)
	}
}
