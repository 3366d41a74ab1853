package imageapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "github.com/openshift/api/apps/v1"
	buildv1 "github.com/openshift/api/build/v1"
	kappsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	"github.com/hardprune/image-registry/prune/ordinary"
)

// podSpec has init containers init-0... and containers c-0... with these images.
func podSpec(initImages, images []string) *corev1.PodSpec {
	spec := &corev1.PodSpec{}
	for i, img := range initImages {
		spec.InitContainers = append(spec.InitContainers, corev1.Container{Name: fmt.Sprintf("init-%d", i), Image: img})
	}
	for i, img := range images {
		spec.Containers = append(spec.Containers, corev1.Container{Name: fmt.Sprintf("c-%d", i), Image: img})
	}
	return spec
}

func template(images ...string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: *podSpec(nil, images)}
}

func pod(ns, name string, phase corev1.PodPhase, created time.Time, images ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: objectMeta(ns, name), Spec: *podSpec(nil, images), Status: corev1.PodStatus{Phase: phase}}
	p.CreationTimestamp = metav1.NewTime(created)
	return p
}

// spec is the pull spec of tag (or digest, for "@...") of the stream ns/name.
func spec(ns, name, tagOrDigest string) string {
	if strings.HasPrefix(tagOrDigest, "@") {
		return "registry:5000/" + ns + "/" + name + tagOrDigest
	}
	return "registry:5000/" + ns + "/" + name + ":" + tagOrDigest
}

func tagUsers(refs *ordinary.Referrers, ns, name, tag string) *ordinary.Users {
	return refs.Tags[ordinary.TagRef{Namespace: ns, Name: name, Tag: tag}]
}

// TestReferrersEveryKind: each kind's pod template (or build input) is reduced, with the
// referrer named as oc names it.
func TestReferrersEveryKind(t *testing.T) {
	one := int32(1)
	f := newFakeCluster(
		pod("shop", "web-1", corev1.PodRunning, longAgo, spec("shop", "pod", "v1")),
		&corev1.ReplicationController{ObjectMeta: objectMeta("shop", "rc"), Spec: corev1.ReplicationControllerSpec{
			Template: &corev1.PodTemplateSpec{Spec: *podSpec(nil, []string{spec("shop", "replicationcontroller", "v1")})},
		}},
		&corev1.ReplicationController{ObjectMeta: objectMeta("shop", "rc-without-template")},
		&kappsv1.ReplicaSet{ObjectMeta: objectMeta("shop", "rs"), Spec: kappsv1.ReplicaSetSpec{
			Template: template(spec("shop", "replicaset", "v1")),
		}},
		&kappsv1.Deployment{ObjectMeta: objectMeta("shop", "deploy"), Spec: kappsv1.DeploymentSpec{
			Replicas: &one,
			Template: template(spec("shop", "deployment", "v1")),
		}},
		&kappsv1.DaemonSet{ObjectMeta: objectMeta("shop", "ds"), Spec: kappsv1.DaemonSetSpec{
			Template: template(spec("shop", "daemonset", "v1")),
		}},
		&kappsv1.StatefulSet{ObjectMeta: objectMeta("shop", "ss"), Spec: kappsv1.StatefulSetSpec{
			Template: template(spec("shop", "statefulset", "v1")),
		}},
		&batchv1.Job{ObjectMeta: objectMeta("shop", "job"), Spec: batchv1.JobSpec{
			Template: template(spec("shop", "job", "v1")),
		}},
		&batchv1.CronJob{ObjectMeta: objectMeta("shop", "cron"), Spec: batchv1.CronJobSpec{
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(spec("shop", "cronjob", "v1"))}},
		}},
		&appsv1.DeploymentConfig{ObjectMeta: objectMeta("shop", "dc"), Spec: appsv1.DeploymentConfigSpec{
			Template: &corev1.PodTemplateSpec{Spec: *podSpec(nil, []string{spec("shop", "deploymentconfig", "v1")})},
		}},
		&appsv1.DeploymentConfig{ObjectMeta: objectMeta("shop", "dc-without-template")},
		&buildv1.Build{ObjectMeta: objectMeta("shop", "build-1"), Spec: buildv1.BuildSpec{CommonSpec: buildv1.CommonSpec{
			Strategy: buildv1.BuildStrategy{SourceStrategy: &buildv1.SourceBuildStrategy{
				From: corev1.ObjectReference{Kind: "DockerImage", Name: spec("shop", "build", "v1")},
			}},
		}}},
		&buildv1.BuildConfig{ObjectMeta: objectMeta("shop", "bc"), Spec: buildv1.BuildConfigSpec{CommonSpec: buildv1.CommonSpec{
			Strategy: buildv1.BuildStrategy{SourceStrategy: &buildv1.SourceBuildStrategy{
				From: corev1.ObjectReference{Kind: "DockerImage", Name: spec("shop", "buildconfig", "v1")},
			}},
		}}},
	)
	refs, notes, err := f.Referrers(context.Background(), "", cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 || len(refs.Invalid) != 0 || len(refs.Images) != 0 {
		t.Errorf("notes %v, invalid %v, images %v", notes, refs.Invalid, refs.Images)
	}
	names := map[string]string{
		"pod": "web-1", "replicationcontroller": "rc", "replicaset": "rs", "deployment": "deploy",
		"daemonset": "ds", "statefulset": "ss", "job": "job", "cronjob": "cron", "deploymentconfig": "dc",
		"build": "build-1", "buildconfig": "bc",
	}
	for resource, name := range names {
		u := tagUsers(refs, "shop", resource, "v1")
		want := ordinary.Referrer{Resource: resource, Namespace: "shop", Name: name}
		if u == nil || u.Count != 1 || u.Sample[0] != want {
			t.Errorf("%s: users %+v, want %v", resource, u, want)
		}
	}
	if len(refs.Tags) != len(names) {
		t.Errorf("%d tags used, want %d: %v", len(refs.Tags), len(names), refs.Tags)
	}
}

// TestReferrersPodSpec: init containers, then containers; empty images ignored; digests name
// images; invalid references kept with their container; a count beyond the sample.
func TestReferrersPodSpec(t *testing.T) {
	p := pod("shop", "web-1", corev1.PodPending, longAgo)
	p.Spec = *podSpec(
		[]string{spec("shop", "setup", "@"+d("s").String()), "  "},
		[]string{spec("shop", "web", "v1"), "", "docker.io/nginx", "bad/Ref"},
	)
	objects := []runtime.Object{p}
	for i := range 4 {
		objects = append(objects, pod("shop", fmt.Sprintf("more-%d", i), corev1.PodRunning, longAgo, spec("shop", "web", "v1")))
	}
	f := newFakeCluster(objects...)
	refs, _, err := f.Referrers(context.Background(), "", cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if u := refs.Images[ordinary.ImageRef{Namespace: "shop", Name: "setup", Digest: d("s")}]; u == nil || u.Count != 1 {
		t.Errorf("init container's image: %+v", u)
	}
	if u := tagUsers(refs, "shop", "web", "v1"); u == nil || u.Count != 5 || len(u.Sample) != ordinary.SampleSize {
		t.Errorf("web:v1 users: %+v", u)
	}
	if len(refs.Tags) != 1 || len(refs.Images) != 1 {
		t.Errorf("tags %v images %v", refs.Tags, refs.Images)
	}
	want := `pod/web-1 namespace=shop: container c-3: invalid image reference "bad/Ref": repository name must be lowercase`
	if len(refs.Invalid) != 1 || refs.Invalid[0].Error() != want {
		t.Errorf("invalid %v, want %s", refs.Invalid, want)
	}
}

// TestReferrersPodPhaseAndAge: finished pods count only when created at or after the cutoff.
func TestReferrersPodPhaseAndAge(t *testing.T) {
	f := newFakeCluster(
		pod("ns", "running-old", corev1.PodRunning, longAgo, spec("ns", "running", "1")),
		pod("ns", "pending-old", corev1.PodPending, longAgo, spec("ns", "pending", "1")),
		pod("ns", "succeeded-old", corev1.PodSucceeded, longAgo, spec("ns", "succeeded-old", "1")),
		pod("ns", "failed-old", corev1.PodFailed, cutoff.Add(-time.Second), spec("ns", "failed-old", "1")),
		pod("ns", "unknown-old", corev1.PodUnknown, longAgo, spec("ns", "unknown-old", "1")),
		pod("ns", "succeeded-young", corev1.PodSucceeded, cutoff.Add(time.Second), spec("ns", "succeeded-young", "1")),
		pod("ns", "failed-at-cutoff", corev1.PodFailed, cutoff, spec("ns", "failed-at-cutoff", "1")),
	)
	refs, _, err := f.Referrers(context.Background(), "", cutoff)
	if err != nil {
		t.Fatal(err)
	}
	for name, counted := range map[string]bool{
		"running": true, "pending": true, "succeeded-young": true, "failed-at-cutoff": true,
		"succeeded-old": false, "failed-old": false, "unknown-old": false,
	} {
		if got := tagUsers(refs, "ns", name, "1") != nil; got != counted {
			t.Errorf("%s: counted = %v, want %v", name, got, counted)
		}
	}
}

func build(ns, name string, strategy buildv1.BuildStrategy) *buildv1.Build {
	return &buildv1.Build{ObjectMeta: objectMeta(ns, name), Spec: buildv1.BuildSpec{CommonSpec: buildv1.CommonSpec{Strategy: strategy}}}
}

// TestReferrersBuildInputs: every kind of a build's from, the strategy that counts, the
// namespace defaulting to the build's own, and names that do not parse.
func TestReferrersBuildInputs(t *testing.T) {
	from := func(kind, ns, name string) corev1.ObjectReference {
		return corev1.ObjectReference{Kind: kind, Namespace: ns, Name: name}
	}
	docker := func(ref corev1.ObjectReference) buildv1.BuildStrategy {
		return buildv1.BuildStrategy{DockerStrategy: &buildv1.DockerBuildStrategy{From: &ref}}
	}
	f := newFakeCluster(
		build("dev", "source", buildv1.BuildStrategy{
			SourceStrategy: &buildv1.SourceBuildStrategy{From: from("ImageStreamTag", "", "s2i:1")},
			// Not read: the source strategy comes first.
			CustomStrategy: &buildv1.CustomBuildStrategy{From: from("ImageStreamTag", "", "ignored:1")},
		}),
		build("dev", "other-ns", docker(from("ImageStreamTag", "openshift", "python:3.11"))),
		build("dev", "isimage", docker(from("ImageStreamImage", "", "base@"+d("b").String()))),
		build("dev", "custom", buildv1.BuildStrategy{CustomStrategy: &buildv1.CustomBuildStrategy{
			From: from("DockerImage", "", spec("tools", "builder", "@"+d("c").String())),
		}}),
		build("dev", "docker-hub", docker(from("DockerImage", "", "golang:1.22"))),
		build("dev", "empty-docker", docker(from("DockerImage", "", " "))),
		build("dev", "no-from", buildv1.BuildStrategy{DockerStrategy: &buildv1.DockerBuildStrategy{}}),
		build("dev", "pipeline", buildv1.BuildStrategy{JenkinsPipelineStrategy: &buildv1.JenkinsPipelineBuildStrategy{}}),
		build("dev", "other-kind", docker(from("ImageStream", "", "base"))),
		build("dev", "bad-istag", docker(from("ImageStreamTag", "", "base"))),
		build("dev", "bad-isimage", docker(from("ImageStreamImage", "", "base@nope"))),
		build("dev", "bad-docker", docker(from("DockerImage", "", "registry:5000/x/Y"))),
		&buildv1.BuildConfig{ObjectMeta: objectMeta("dev", "bc"), Spec: buildv1.BuildConfigSpec{CommonSpec: buildv1.CommonSpec{
			Strategy: docker(from("ImageStreamTag", "", "s2i:1")),
		}}},
	)
	refs, _, err := f.Referrers(context.Background(), "", cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if u := tagUsers(refs, "dev", "s2i", "1"); u == nil || u.Count != 2 {
		t.Errorf("dev/s2i:1: %+v, want the build and the build config", u)
	}
	if u := tagUsers(refs, "openshift", "python", "3.11"); u == nil || u.Sample[0].Name != "other-ns" {
		t.Errorf("openshift/python:3.11: %+v", u)
	}
	if u := refs.Images[ordinary.ImageRef{Namespace: "dev", Name: "base", Digest: d("b")}]; u == nil {
		t.Errorf("dev/base@b not used")
	}
	if u := refs.Images[ordinary.ImageRef{Namespace: "tools", Name: "builder", Digest: d("c")}]; u == nil {
		t.Errorf("tools/builder@c not used")
	}
	if len(refs.Tags) != 2 || len(refs.Images) != 2 {
		t.Errorf("tags %v images %v", refs.Tags, refs.Images)
	}
	want := map[string]string{
		"bad-istag":   `build/bad-istag namespace=dev: invalid ImageStreamTag reference "base": expected exactly one : delimiter in the istag "base"`,
		"bad-isimage": `build/bad-isimage namespace=dev: invalid ImageStreamImage reference "base@nope": image stream image name "base@nope": the ID is not a digest`,
		"bad-docker":  `build/bad-docker namespace=dev: invalid image reference "registry:5000/x/Y": repository name must be lowercase`,
	}
	if len(refs.Invalid) != len(want) {
		t.Errorf("invalid: %v", refs.Invalid)
	}
	for _, inv := range refs.Invalid {
		if w := want[inv.Referrer.Name]; !strings.HasPrefix(inv.Error(), w) || w == "" {
			t.Errorf("got  %s\nwant %s", inv.Error(), w)
		}
	}
}

// TestReferrersNamespace: only the objects of the namespace asked for.
func TestReferrersNamespace(t *testing.T) {
	f := newFakeCluster(
		pod("shop", "a", corev1.PodRunning, longAgo, spec("shop", "a", "1")),
		pod("other", "b", corev1.PodRunning, longAgo, spec("shop", "b", "1")),
	)
	refs, _, err := f.Referrers(context.Background(), "shop", cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs.Tags) != 1 || tagUsers(refs, "shop", "a", "1") == nil {
		t.Errorf("tags %v", refs.Tags)
	}
}

func notFound(resource string) clienttesting.ReactionFunc {
	return func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: resource}, "")
	}
}

// TestReferrersNotServed: the OpenShift resources a plain Kubernetes cluster lacks are skipped
// with a note; a core resource answering NotFound is an error.
func TestReferrersNotServed(t *testing.T) {
	f := newFakeCluster(pod("shop", "a", corev1.PodRunning, longAgo, spec("shop", "a", "1")))
	f.apps.PrependReactor("list", "deploymentconfigs", notFound("deploymentconfigs"))
	f.builds.PrependReactor("list", "builds", notFound("builds"))
	f.builds.PrependReactor("list", "buildconfigs", notFound("buildconfigs"))
	refs, notes, err := f.Referrers(context.Background(), "", cutoff)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"buildconfigs.build.openshift.io: not served by this cluster, skipped",
		"builds.build.openshift.io: not served by this cluster, skipped",
		"deploymentconfigs.apps.openshift.io: not served by this cluster, skipped",
	}
	if strings.Join(notes, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes:\n%s", strings.Join(notes, "\n"))
	}
	if tagUsers(refs, "shop", "a", "1") == nil {
		t.Errorf("the pod's tag is missing: %v", refs.Tags)
	}

	f = newFakeCluster()
	f.kube.PrependReactor("list", "replicasets", notFound("replicasets"))
	if refs, _, err := f.Referrers(context.Background(), "", cutoff); err == nil || refs != nil ||
		!strings.HasPrefix(err.Error(), "listing replicasets.apps: ") {
		t.Errorf("core resource not found: refs %v, err %v", refs, err)
	}
}

// TestReferrersErrors: a refusal names the permission and the remedy; any other error aborts.
func TestReferrersErrors(t *testing.T) {
	forbidden := func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no"))
	}
	for ns, want := range map[string]string{
		"":     `listing pods: forbidden: the pruner needs "list" on pods in all namespaces (bind the ClusterRole system:image-pruner)`,
		"shop": `listing pods: forbidden: the pruner needs "list" on pods in namespace shop (bind the ClusterRole system:image-pruner)`,
	} {
		f := newFakeCluster()
		f.kube.PrependReactor("list", "pods", forbidden)
		refs, _, err := f.Referrers(context.Background(), ns, cutoff)
		if err == nil || err.Error() != want || !apierrors.IsForbidden(err) || refs != nil {
			t.Errorf("namespace %q: refs %v, err %v", ns, refs, err)
		}
	}

	f := newFakeCluster()
	f.builds.PrependReactor("list", "builds", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd fell over"))
	})
	refs, _, err := f.Referrers(context.Background(), "", cutoff)
	if err == nil || refs != nil || !strings.HasPrefix(err.Error(), "listing builds.build.openshift.io: ") ||
		!strings.Contains(err.Error(), "etcd fell over") {
		t.Errorf("refs %v, err %v", refs, err)
	}
}

// pagedPods serves pods two a page, honouring limit and continue; failOn fails the calls
// numbered so.
func pagedPods(pods []corev1.Pod, failOn map[int]error, calls *int) clienttesting.ReactionFunc {
	return func(action clienttesting.Action) (bool, runtime.Object, error) {
		*calls++
		opts := action.(clienttesting.ListActionImpl).GetListOptions()
		if opts.Limit != 2 {
			return true, nil, fmt.Errorf("limit %d, want 2", opts.Limit)
		}
		if err, ok := failOn[*calls]; ok {
			return true, nil, err
		}
		page := 0
		if opts.Continue != "" {
			page = int(opts.Continue[0] - '0')
		}
		end := min(page*2+2, len(pods))
		list := &corev1.PodList{Items: pods[page*2 : end]}
		if end < len(pods) {
			list.Continue = string(rune('0' + page + 1))
		}
		return true, list, nil
	}
}

// TestReferrersPagesAndStartsOver: pods are read page by page; an expired continue token
// starts the whole pass over, and nothing is counted twice.
func TestReferrersPagesAndStartsOver(t *testing.T) {
	var pods []corev1.Pod
	for i := range 5 {
		pods = append(pods, *pod("ns", fmt.Sprintf("p%d", i), corev1.PodRunning, longAgo, spec("ns", "app", "1")))
	}
	f := newFakeCluster()
	calls := 0
	// Calls 1 and 2 read pages 0 and 1; call 3 expires; calls 4-6 read the three pages again.
	f.kube.PrependReactor("list", "pods", pagedPods(pods, map[int]error{3: apierrors.NewResourceExpired("expired")}, &calls))
	refs, _, err := f.Referrers(context.Background(), "", cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if u := tagUsers(refs, "ns", "app", "1"); u == nil || u.Count != 5 || calls != 6 {
		t.Errorf("users %+v after %d calls; want 5 after 6", u, calls)
	}
}
