package imageapi

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "github.com/openshift/api/apps/v1"
	buildv1 "github.com/openshift/api/build/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	kappsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"

	"github.com/hardprune/image-registry/prune/ordinary"
)

// concurrentListings bounds the resources listed at the same time: enough that the slowest
// listing (pods) sets the time, few enough not to load the API server and the shared cores.
const concurrentListings = 4

// referrerPageBuffer is how many pages a listing fetches ahead of its reduction: one keeps the
// API server busy while a page is reduced, and memory at two pages per listing.
const referrerPageBuffer = 1

// Referrers lists, page by page, every object that may use an image stream's images, in
// namespace (in all namespaces when empty): pods, replication controllers, replica sets,
// deployments, daemon sets, stateful sets, jobs, cron jobs, deployment configs, builds and
// build configs; each object is reduced at once to the tags and images it names (see
// ordinary.Referrers), the references that do not parse kept as ordinary.InvalidRef. Pods
// count only when running or pending, or created at or after cutoff.
//
// The notes say what was skipped: DeploymentConfigs, Builds and BuildConfigs on a cluster that
// does not serve them (plain Kubernetes). Any other failure returns an error and no
// Referrers: a partial set would let the prune remove images in use. A listing whose continue
// token expired starts the whole pass over, up to 3 attempts in all.
func (c *Connection) Referrers(
	ctx context.Context,
	namespace string,
	cutoff time.Time,
) (refs *ordinary.Referrers, notes []string, err error) {
	for attempt := 1; attempt <= maxListAttempts; attempt++ {
		if refs, notes, err = c.referrersOnce(ctx, namespace, cutoff); err == nil {
			return refs, notes, nil
		}
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			return nil, nil, err
		}
		c.log().
			WithError(err).
			Warnf("a listing of the referrers expired mid-way; starting over (attempt %d of %d)", attempt+1, maxListAttempts)
	}
	return nil, nil, fmt.Errorf("listing the referrers kept expiring after %d attempts: %w", maxListAttempts, err)
}

// referrersOnce is one attempt of Referrers.
func (c *Connection) referrersOnce(
	ctx context.Context,
	namespace string,
	cutoff time.Time,
) (*ordinary.Referrers, []string, error) {
	set := &referrerSet{refs: ordinary.NewReferrers(), log: c.log()}
	var (
		notesMu sync.Mutex
		notes   []string
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrentListings)
	for _, src := range c.referrerSources(cutoff) {
		g.Go(func() error {
			err := c.eachReferrer(gctx, src, namespace, set)
			if err == nil {
				return nil
			}
			if src.optional && apierrors.IsNotFound(err) {
				note := src.resource + ": not served by this cluster, skipped"
				c.log().WithError(err).Debug(note)
				notesMu.Lock()
				defer notesMu.Unlock()
				notes = append(notes, note)
				return nil
			}
			return requestError(err, "listing "+src.resource, "list", src.resource, namespace, false)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	sort.Strings(notes)
	c.log().WithFields(logrus.Fields{
		"tags":    len(set.refs.Tags),
		"images":  len(set.refs.Images),
		"invalid": len(set.refs.Invalid),
	}).Debug("listed the referrers")
	return set.refs, notes, nil
}

// eachReferrer lists one resource page by page, reducing each object as its page arrives.
func (c *Connection) eachReferrer(ctx context.Context, src referrerSource, namespace string, set *referrerSet) error {
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return src.list(ctx, namespace, opts)
	})
	p.PageSize = pageSize(c.PageSize)
	p.PageBufferSize = referrerPageBuffer
	return p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		return src.reduce(obj, set)
	})
}

// referrerSource is one resource that may use images: how to list it and reduce its objects.
type referrerSource struct {
	// resource names it as RBAC does, with its group: "pods", "deployments.apps".
	resource string
	// optional says a cluster may not serve it (the OpenShift APIs): a listing answered
	// NotFound is skipped. A core resource answered NotFound is an error, never taken for
	// "nothing uses images".
	optional bool
	list     func(ctx context.Context, namespace string, opts metav1.ListOptions) (runtime.Object, error)
	reduce   reduceFunc
}

// reduceFunc reduces one listed object into the set.
type reduceFunc func(obj runtime.Object, set *referrerSet) error

// referrerSources are the resources oc adm prune images reads its referrers from.
func (c *Connection) referrerSources(cutoff time.Time) []referrerSource {
	core, apps, batch := c.Kube.CoreV1(), c.Kube.AppsV1(), c.Kube.BatchV1()
	return []referrerSource{
		{
			resource: "pods",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return core.Pods(ns).List(ctx, opts)
			},
			reduce: podSpecOf("pod", func(p *corev1.Pod) *corev1.PodSpec {
				if !podCounts(p, cutoff) {
					return nil
				}
				return &p.Spec
			}),
		},
		{
			resource: "replicationcontrollers",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return core.ReplicationControllers(ns).List(ctx, opts)
			},
			reduce: podSpecOf("replicationcontroller", func(rc *corev1.ReplicationController) *corev1.PodSpec {
				return templateSpec(rc.Spec.Template)
			}),
		},
		{
			resource: "replicasets.apps",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return apps.ReplicaSets(ns).List(ctx, opts)
			},
			reduce: podSpecOf("replicaset", func(rs *kappsv1.ReplicaSet) *corev1.PodSpec {
				return &rs.Spec.Template.Spec
			}),
		},
		{
			resource: "deployments.apps",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return apps.Deployments(ns).List(ctx, opts)
			},
			reduce: podSpecOf("deployment", func(d *kappsv1.Deployment) *corev1.PodSpec {
				return &d.Spec.Template.Spec
			}),
		},
		{
			resource: "daemonsets.apps",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return apps.DaemonSets(ns).List(ctx, opts)
			},
			reduce: podSpecOf("daemonset", func(ds *kappsv1.DaemonSet) *corev1.PodSpec {
				return &ds.Spec.Template.Spec
			}),
		},
		{
			resource: "statefulsets.apps",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return apps.StatefulSets(ns).List(ctx, opts)
			},
			reduce: podSpecOf("statefulset", func(ss *kappsv1.StatefulSet) *corev1.PodSpec {
				return &ss.Spec.Template.Spec
			}),
		},
		{
			resource: "jobs.batch",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return batch.Jobs(ns).List(ctx, opts)
			},
			reduce: podSpecOf("job", func(j *batchv1.Job) *corev1.PodSpec {
				return &j.Spec.Template.Spec
			}),
		},
		{
			resource: "cronjobs.batch",
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return batch.CronJobs(ns).List(ctx, opts)
			},
			reduce: podSpecOf("cronjob", func(cj *batchv1.CronJob) *corev1.PodSpec {
				return &cj.Spec.JobTemplate.Spec.Template.Spec
			}),
		},
		{
			resource: "deploymentconfigs.apps.openshift.io",
			optional: true,
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return c.Apps.DeploymentConfigs(ns).List(ctx, opts)
			},
			reduce: podSpecOf("deploymentconfig", func(dc *appsv1.DeploymentConfig) *corev1.PodSpec {
				return templateSpec(dc.Spec.Template)
			}),
		},
		{
			resource: "builds.build.openshift.io",
			optional: true,
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return c.Builds.Builds(ns).List(ctx, opts)
			},
			reduce: buildInputOf("build", func(b *buildv1.Build) *buildv1.BuildStrategy {
				return &b.Spec.Strategy
			}),
		},
		{
			resource: "buildconfigs.build.openshift.io",
			optional: true,
			list: func(ctx context.Context, ns string, opts metav1.ListOptions) (runtime.Object, error) {
				return c.Builds.BuildConfigs(ns).List(ctx, opts)
			},
			reduce: buildInputOf("buildconfig", func(bc *buildv1.BuildConfig) *buildv1.BuildStrategy {
				return &bc.Spec.Strategy
			}),
		},
	}
}

// podCounts tells whether a pod's images are in use: it is running or pending, or young
// enough that a finished pod may run again (as oc counts them).
func podCounts(p *corev1.Pod, cutoff time.Time) bool {
	return p.Status.Phase == corev1.PodRunning ||
		p.Status.Phase == corev1.PodPending ||
		!p.CreationTimestamp.Time.Before(cutoff)
}

// templateSpec is a template's pod spec, nil without a template.
func templateSpec(t *corev1.PodTemplateSpec) *corev1.PodSpec {
	if t == nil {
		return nil
	}
	return &t.Spec
}

// podSpecOf reduces the objects of type O listed as resource (the referrer's singular kind) by
// the pod spec spec returns, none when nil.
func podSpecOf[O runtime.Object](resource string, spec func(O) *corev1.PodSpec) reduceFunc {
	return func(obj runtime.Object, set *referrerSet) error {
		o, uses, err := begin[O](obj, resource)
		if err != nil {
			return err
		}
		if ps := spec(o); ps != nil {
			uses.podSpec(ps)
		}
		set.record(uses)
		return nil
	}
}

// buildInputOf reduces the objects of type O listed as resource by the input image of the
// build strategy strategy returns.
func buildInputOf[O runtime.Object](resource string, strategy func(O) *buildv1.BuildStrategy) reduceFunc {
	return func(obj runtime.Object, set *referrerSet) error {
		o, uses, err := begin[O](obj, resource)
		if err != nil {
			return err
		}
		uses.buildInput(buildInput(strategy(o)), set.log)
		set.record(uses)
		return nil
	}
}

// begin checks that a listed object is an O and starts gathering its uses.
func begin[O runtime.Object](obj runtime.Object, resource string) (O, *objectUses, error) {
	o, ok := obj.(O)
	if !ok {
		var zero O
		return zero, nil, fmt.Errorf("the %s list returned a %T: %w", resource, obj, ErrMalformed)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		var zero O
		return zero, nil, fmt.Errorf("a %s without metadata: %v: %w", resource, err, ErrMalformed)
	}
	referrer := ordinary.Referrer{Resource: resource, Namespace: m.GetNamespace(), Name: m.GetName()}
	return o, &objectUses{referrer: referrer}, nil
}

// objectUses are one object's references, gathered before they are recorded at once.
type objectUses struct {
	referrer ordinary.Referrer
	uses     []imageUse
	invalid  []ordinary.InvalidRef
}

// podSpec gathers the images of the init containers, then of the containers.
func (u *objectUses) podSpec(spec *corev1.PodSpec) {
	for _, c := range spec.InitContainers {
		u.pullSpec("init container "+c.Name, c.Image)
	}
	for _, c := range spec.Containers {
		u.pullSpec("container "+c.Name, c.Image)
	}
}

// pullSpec gathers one pull spec; where is the container, empty for a build's input.
func (u *objectUses) pullSpec(where, spec string) {
	if strings.TrimSpace(spec) == "" {
		return
	}
	use, err := parsePullSpec(spec)
	if err != nil {
		u.addInvalid(where, "image", spec, err)
		return
	}
	if use.Tag != nil || use.Image != nil {
		u.uses = append(u.uses, use)
	}
}

// buildInput gathers the image a build starts from. Its ImageStreamImage and ImageStreamTag
// are in the build's namespace unless they name another.
func (u *objectUses) buildInput(from *corev1.ObjectReference, log logrus.FieldLogger) {
	if from == nil {
		return
	}
	namespace := from.Namespace
	if namespace == "" {
		namespace = u.referrer.Namespace
	}
	switch from.Kind {
	case "DockerImage":
		u.pullSpec("", from.Name)
	case "ImageStreamImage":
		ref, err := parseImageStreamImage(namespace, from.Name)
		if err != nil {
			u.addInvalid("", from.Kind, from.Name, err)
			return
		}
		u.uses = append(u.uses, imageUse{Image: &ref})
	case "ImageStreamTag":
		ref, err := parseImageStreamTag(namespace, from.Name)
		if err != nil {
			u.addInvalid("", from.Kind, from.Name, err)
			return
		}
		u.uses = append(u.uses, imageUse{Tag: &ref})
	default:
		log.WithFields(logrus.Fields{"referrer": u.referrer.String(), "kind": from.Kind, "name": from.Name}).
			Debug("ignoring a build input of a kind that names no image stream")
	}
}

func (u *objectUses) addInvalid(where, kind, ref string, err error) {
	u.invalid = append(u.invalid, ordinary.InvalidRef{
		Referrer:  u.referrer,
		Where:     where,
		Kind:      kind,
		Reference: ref,
		Err:       err.Error(),
	})
}

// referrerSet is the Referrers the concurrent listings fill.
type referrerSet struct {
	mu   sync.Mutex
	refs *ordinary.Referrers
	log  logrus.FieldLogger
}

// record adds one object's uses.
func (s *referrerSet) record(u *objectUses) {
	if len(u.uses) == 0 && len(u.invalid) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, use := range u.uses {
		switch {
		case use.Tag != nil:
			s.refs.UseTag(*use.Tag, u.referrer)
		case use.Image != nil:
			s.refs.UseImage(*use.Image, u.referrer)
		}
	}
	s.refs.Invalid = append(s.refs.Invalid, u.invalid...)
}
