package harness

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	appsv1 "github.com/openshift/api/apps/v1"
	buildv1 "github.com/openshift/api/build/v1"
	appsclient "github.com/openshift/client-go/apps/clientset/versioned"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	kappsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ReferrerKind is a kind of object CreateReferrer makes: those whose images the ordinary prune
// (`oc adm prune images`) keeps, and the LimitRange its size mode reads.
type ReferrerKind string

// The kinds of CreateReferrer, as the API names them.
const (
	// ReferrerPod is a pod; only a Running or Pending one (or one created within the prune's
	// age) keeps its images. ReferrerSpec.PodPhase sets its phase.
	ReferrerPod                   ReferrerKind = "Pod"
	ReferrerReplicationController ReferrerKind = "ReplicationController"
	ReferrerReplicaSet            ReferrerKind = "ReplicaSet"
	ReferrerDeployment            ReferrerKind = "Deployment"
	ReferrerDaemonSet             ReferrerKind = "DaemonSet"
	ReferrerStatefulSet           ReferrerKind = "StatefulSet"
	ReferrerJob                   ReferrerKind = "Job"
	ReferrerCronJob               ReferrerKind = "CronJob"
	// ReferrerDeploymentConfig, ReferrerBuildConfig and ReferrerBuild need the OpenShift
	// workload APIs (InstallOpenShiftWorkloadAPIs; StartCluster installs them).
	ReferrerDeploymentConfig ReferrerKind = "DeploymentConfig"
	ReferrerBuildConfig      ReferrerKind = "BuildConfig"
	ReferrerBuild            ReferrerKind = "Build"
	// ReferrerLimitRange names no image: it holds the openshift.io/Image max storage that
	// makes the size mode (--prune-over-size-limit) prune larger images of its namespace.
	ReferrerLimitRange ReferrerKind = "LimitRange"
)

// ReferrerKinds are all the kinds of CreateReferrer.
var ReferrerKinds = []ReferrerKind{
	ReferrerPod, ReferrerReplicationController, ReferrerReplicaSet, ReferrerDeployment, ReferrerDaemonSet,
	ReferrerStatefulSet, ReferrerJob, ReferrerCronJob, ReferrerDeploymentConfig, ReferrerBuildConfig,
	ReferrerBuild, ReferrerLimitRange,
}

// LimitTypeImage is the LimitRange item type OpenShift limits the size of an image with.
const LimitTypeImage corev1.LimitType = "openshift.io/Image"

// ReferrerSpec says what a referrer names. Each kind takes its own fields and refuses the
// others', so that a test cannot believe it seeded what it did not.
type ReferrerSpec struct {
	// Images are the images of the pod (template)'s containers, one container each, and
	// InitImages those of its init containers: for pods and every kind with a pod template
	// (at least one image). Any string goes, an unparsable reference too.
	Images, InitImages []string
	// PodPhase (pods only) is set through the status subresource after the pod is created,
	// since no kubelet runs to set it; empty leaves the Pending a new pod has.
	PodPhase corev1.PodPhase
	// From (builds and build configs, required) is the strategy's from: Kind DockerImage
	// (Name an image reference), ImageStreamImage (Name "stream@sha256:...") or
	// ImageStreamTag (Name "stream:tag"), Namespace optional (the build's own if empty).
	From *corev1.ObjectReference
	// BuildStrategy (builds and build configs) is the strategy that has From: Source (the
	// default), Docker or Custom.
	BuildStrategy buildv1.BuildStrategyType
	// MaxImageStorage (LimitRanges only, required) is the max storage of its
	// openshift.io/Image item, a quantity such as "1Gi".
	MaxImageStorage string
}

// CreateReferrer creates the object kind named name in namespace (which it creates unless it
// exists) with what spec says, through the typed clients, as admin.
func (k *KubeAPIServer) CreateReferrer(
	ctx context.Context,
	namespace string,
	kind ReferrerKind,
	name string,
	spec ReferrerSpec,
) error {
	if err := spec.check(kind); err != nil {
		return fmt.Errorf("%s %s/%s: %w", kind, namespace, name, err)
	}
	cfg, err := k.RESTConfig()
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := createNamespace(ctx, kube, namespace); err != nil {
		return err
	}
	meta := metav1.ObjectMeta{Name: name, Namespace: namespace}
	labels := map[string]string{"app": name}
	selector := &metav1.LabelSelector{MatchLabels: labels}
	template := func(restart corev1.RestartPolicy) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec.podSpec(restart)}
	}
	opts := metav1.CreateOptions{}
	switch kind {
	case ReferrerPod:
		err = createPod(ctx, kube, &corev1.Pod{ObjectMeta: meta, Spec: spec.podSpec(corev1.RestartPolicyNever)},
			spec.PodPhase)
	case ReferrerReplicationController:
		t := template(corev1.RestartPolicyAlways)
		_, err = kube.CoreV1().ReplicationControllers(namespace).Create(ctx, &corev1.ReplicationController{
			ObjectMeta: meta, Spec: corev1.ReplicationControllerSpec{Selector: labels, Template: &t},
		}, opts)
	case ReferrerReplicaSet:
		_, err = kube.AppsV1().ReplicaSets(namespace).Create(ctx, &kappsv1.ReplicaSet{
			ObjectMeta: meta, Spec: kappsv1.ReplicaSetSpec{Selector: selector, Template: template(corev1.RestartPolicyAlways)},
		}, opts)
	case ReferrerDeployment:
		_, err = kube.AppsV1().Deployments(namespace).Create(ctx, &kappsv1.Deployment{
			ObjectMeta: meta, Spec: kappsv1.DeploymentSpec{Selector: selector, Template: template(corev1.RestartPolicyAlways)},
		}, opts)
	case ReferrerDaemonSet:
		_, err = kube.AppsV1().DaemonSets(namespace).Create(ctx, &kappsv1.DaemonSet{
			ObjectMeta: meta, Spec: kappsv1.DaemonSetSpec{Selector: selector, Template: template(corev1.RestartPolicyAlways)},
		}, opts)
	case ReferrerStatefulSet:
		_, err = kube.AppsV1().StatefulSets(namespace).Create(ctx, &kappsv1.StatefulSet{
			ObjectMeta: meta, Spec: kappsv1.StatefulSetSpec{
				Selector: selector, ServiceName: name, Template: template(corev1.RestartPolicyAlways),
			},
		}, opts)
	case ReferrerJob:
		_, err = kube.BatchV1().Jobs(namespace).Create(ctx, &batchv1.Job{
			ObjectMeta: meta, Spec: batchv1.JobSpec{Template: template(corev1.RestartPolicyNever)},
		}, opts)
	case ReferrerCronJob:
		_, err = kube.BatchV1().CronJobs(namespace).Create(ctx, &batchv1.CronJob{
			ObjectMeta: meta, Spec: batchv1.CronJobSpec{
				Schedule: "0 0 * * *",
				JobTemplate: batchv1.JobTemplateSpec{
					Spec: batchv1.JobSpec{Template: template(corev1.RestartPolicyNever)},
				},
			},
		}, opts)
	case ReferrerDeploymentConfig:
		var apps appsclient.Interface
		if apps, err = appsclient.NewForConfig(cfg); err == nil {
			t := template(corev1.RestartPolicyAlways)
			_, err = apps.AppsV1().DeploymentConfigs(namespace).Create(ctx, &appsv1.DeploymentConfig{
				ObjectMeta: meta, Spec: appsv1.DeploymentConfigSpec{Replicas: 1, Selector: labels, Template: &t},
			}, opts)
		}
	case ReferrerBuildConfig, ReferrerBuild:
		var builds buildclient.Interface
		if builds, err = buildclient.NewForConfig(cfg); err != nil {
			break
		}
		common := buildv1.CommonSpec{Strategy: spec.buildStrategy()}
		if kind == ReferrerBuild {
			_, err = builds.BuildV1().Builds(namespace).Create(ctx, &buildv1.Build{
				ObjectMeta: meta, Spec: buildv1.BuildSpec{CommonSpec: common},
			}, opts)
		} else {
			_, err = builds.BuildV1().BuildConfigs(namespace).Create(ctx, &buildv1.BuildConfig{
				ObjectMeta: meta, Spec: buildv1.BuildConfigSpec{CommonSpec: common},
			}, opts)
		}
	case ReferrerLimitRange:
		_, err = kube.CoreV1().LimitRanges(namespace).Create(ctx, &corev1.LimitRange{
			ObjectMeta: meta, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type: LimitTypeImage,
				Max:  corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(spec.MaxImageStorage)},
			}}},
		}, opts)
	}
	if err != nil {
		return fmt.Errorf("creating %s %s/%s: %w", kind, namespace, name, err)
	}
	return nil
}

// check refuses a spec that gives kind what it does not take, or not what it needs.
func (s ReferrerSpec) check(kind ReferrerKind) error {
	var podTemplate, pod, build, limitRange bool
	switch kind {
	case ReferrerPod:
		pod, podTemplate = true, true
	case ReferrerReplicationController, ReferrerReplicaSet, ReferrerDeployment, ReferrerDaemonSet,
		ReferrerStatefulSet, ReferrerJob, ReferrerCronJob, ReferrerDeploymentConfig:
		podTemplate = true
	case ReferrerBuildConfig, ReferrerBuild:
		build = true
	case ReferrerLimitRange:
		limitRange = true
	default:
		return fmt.Errorf("unknown kind; want one of %v", ReferrerKinds)
	}
	var errs []error
	given := func(field string, set, takes bool) {
		if set && !takes {
			errs = append(errs, fmt.Errorf("%s is not for this kind", field))
		}
	}
	given("Images", len(s.Images) > 0, podTemplate)
	given("InitImages", len(s.InitImages) > 0, podTemplate)
	given("PodPhase", s.PodPhase != "", pod)
	given("From", s.From != nil, build)
	given("BuildStrategy", s.BuildStrategy != "", build)
	given("MaxImageStorage", s.MaxImageStorage != "", limitRange)
	if podTemplate && len(s.Images) == 0 {
		errs = append(errs, errors.New("no Images (a pod has at least one container)"))
	}
	if build && s.From == nil {
		errs = append(errs, errors.New("no From"))
	}
	switch s.BuildStrategy {
	case "", buildv1.SourceBuildStrategyType, buildv1.DockerBuildStrategyType, buildv1.CustomBuildStrategyType:
	default:
		errs = append(errs, fmt.Errorf("BuildStrategy %q: want Source, Docker or Custom", s.BuildStrategy))
	}
	if limitRange {
		if _, err := resource.ParseQuantity(s.MaxImageStorage); err != nil {
			errs = append(errs, fmt.Errorf("MaxImageStorage %q: %w", s.MaxImageStorage, err))
		}
	}
	return errors.Join(errs...)
}

// podSpec has a container for each image and an init container for each init image.
func (s ReferrerSpec) podSpec(restart corev1.RestartPolicy) corev1.PodSpec {
	containers := func(prefix string, images []string) []corev1.Container {
		var cs []corev1.Container
		for i, image := range images {
			cs = append(cs, corev1.Container{Name: prefix + strconv.Itoa(i), Image: image})
		}
		return cs
	}
	return corev1.PodSpec{
		RestartPolicy:  restart,
		InitContainers: containers("init", s.InitImages),
		Containers:     containers("c", s.Images),
	}
}

// buildStrategy is the strategy of s.BuildStrategy with s.From.
func (s ReferrerSpec) buildStrategy() buildv1.BuildStrategy {
	switch s.BuildStrategy {
	case buildv1.DockerBuildStrategyType:
		return buildv1.BuildStrategy{Type: s.BuildStrategy, DockerStrategy: &buildv1.DockerBuildStrategy{From: s.From}}
	case buildv1.CustomBuildStrategyType:
		return buildv1.BuildStrategy{Type: s.BuildStrategy, CustomStrategy: &buildv1.CustomBuildStrategy{From: *s.From}}
	default:
		return buildv1.BuildStrategy{
			Type: buildv1.SourceBuildStrategyType, SourceStrategy: &buildv1.SourceBuildStrategy{From: *s.From},
		}
	}
}

// createPod creates pod and then sets its phase unless that is Pending (every new pod's). Its
// namespace gets the service account "default", which the ServiceAccount admission plugin
// requires and which only kube-controller-manager, not running here, would create.
func createPod(
	ctx context.Context,
	kube kubernetes.Interface,
	pod *corev1.Pod,
	phase corev1.PodPhase,
) error {
	_, err := kube.CoreV1().ServiceAccounts(pod.Namespace).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service account %s/default: %w", pod.Namespace, err)
	}
	created, err := kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil || phase == "" || phase == created.Status.Phase {
		return err
	}
	created.Status.Phase = phase
	if _, err := kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting phase %s: %w", phase, err)
	}
	return nil
}
