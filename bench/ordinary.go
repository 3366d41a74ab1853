package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/opencontainers/go-digest"
	buildv1 "github.com/openshift/api/build/v1"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hardprune/image-registry/e2e/harness"
)

// OrdinarySize is the shape of the cluster the ordinary prune (`dockerregistry -prune-images`)
// reads: Images, image streams over namespaces, pods, and Others objects of each other kind
// that names images (replication controllers, replica sets, deployments, daemon sets,
// stateful sets, jobs, cron jobs, deployment configs, builds, build configs).
type OrdinarySize struct {
	Name                                   string
	Images, Streams, Pods, Namespaces      int
	Others                                 int
	TagsPerStreamMax, SharedLayersPerImage int
}

// OrdinarySizes are the named sizes of the ordinary prune's cluster: "full" is the issue's
// (100k Images, 10k streams, 50k pods), "medium" a fifth of it, "small" a smoke run, "tiny" the
// go test one.
var OrdinarySizes = map[string]OrdinarySize{
	"full":   {Name: "full", Images: 100_000, Streams: 10_000, Pods: 50_000, Namespaces: 250, Others: 50},
	"medium": {Name: "medium", Images: 20_000, Streams: 2_000, Pods: 10_000, Namespaces: 50, Others: 10},
	"small":  {Name: "small", Images: 2_000, Streams: 200, Pods: 1_000, Namespaces: 10, Others: 3},
	"tiny":   {Name: "tiny", Images: 300, Streams: 30, Pods: 150, Namespaces: 3, Others: 1},
}

// The ordinary prune's settings in the bench: oc's default tag revisions, and no age (every
// object was created by the load, minutes before the run; with oc's 60m nothing would be old).
const (
	ordinaryKeepTagRevisions = 3
	ordinaryKeepYoungerThan  = "0s"
)

// ordinaryRegistryHost is the host the pods' references name: OpenShift's internal registry.
const ordinaryRegistryHost = "image-registry.openshift-image-registry.svc:5000"

// ordinaryTagNames are the tags of the streams; stream s has the first 1 + s%3.
var ordinaryTagNames = []string{"latest", "v1", "stable"}

// externalImages are references no image stream holds (the prune ignores them, as oc does).
var externalImages = []string{
	"registry.access.redhat.com/ubi9/ubi-minimal:9.4",
	"quay.io/prometheus/node-exporter:v1.8.1",
	"docker.io/library/busybox:1.36",
	"nginx:1.27",
}

type ordImage struct {
	manifest, config digest.Digest
	layers           []digest.Digest
	size             int64
}

type ordTag struct {
	name  string
	items []int // images, newest first
}

type ordStream struct {
	ns, name string
	tags     []ordTag
}

type ordPod struct {
	ns, name          string
	containers, inits []string
	phase             corev1.PodPhase
}

type ordOther struct {
	kind     harness.ReferrerKind
	ns, name string
	spec     harness.ReferrerSpec
}

// OrdinaryExpect is what a prune with the bench's settings must decide, worked out from the
// generated data alone: the summary's counts.
type OrdinaryExpect struct {
	DeletedImages, DeletedItems, UpdatedStreams int
	// KeptByDigest counts the old revisions that a running or pending pod, or another
	// referrer, keeps by digest.
	KeptByDigest int
}

// OrdinaryDataset is a generated cluster for the ordinary prune, kept in memory until loaded.
type OrdinaryDataset struct {
	Size       OrdinarySize
	namespaces []string
	images     []ordImage
	streams    []*ordStream
	pods       []ordPod
	others     []ordOther
	// What it holds, for the report.
	Orphans, Items            int // Images in no stream; history items
	PodPhases                 map[corev1.PodPhase]int
	ByTag, ByDigest, External int // the pods' container references
	OtherKinds                int
	Expect                    OrdinaryExpect
}

// Objects is every object the load creates: Images, streams, pods, the other referrers,
// namespaces.
func (ds *OrdinaryDataset) Objects() int {
	return len(ds.images) + len(ds.streams) + len(ds.pods) + len(ds.others) + len(ds.namespaces)
}

// GenerateOrdinary builds the cluster of size: 5% of the Images in no stream; the rest, one
// history item each, dealt round robin over the streams' tags (1 to 3 a stream), so that each
// tag has about Images×0.95/(2×Streams) revisions, newest first, a day apart; the revisions past
// ordinaryKeepTagRevisions are old enough to prune. Pods are spread over the namespaces, each
// naming streams of its own: 60% of the containers by tag (host/ns/name:tag), 25% by digest (one
// in five of those an old revision, which keeps it while the pod runs), 15% external images;
// 70% of the pods Running, 15% Pending, 10% Succeeded, 5% Failed (an ended pod keeps nothing).
// The other referrers name half by tag, half an old revision by digest. Deterministic.
func GenerateOrdinary(size OrdinarySize) *OrdinaryDataset {
	if size.TagsPerStreamMax == 0 {
		size.TagsPerStreamMax = len(ordinaryTagNames)
	}
	if size.SharedLayersPerImage == 0 {
		size.SharedLayersPerImage = 4
	}
	rng := rand.New(rand.NewPCG(14, 1))
	ds := &OrdinaryDataset{Size: size, PodPhases: map[corev1.PodPhase]int{}}
	for n := range max(1, size.Namespaces) {
		ds.namespaces = append(ds.namespaces, fmt.Sprintf("team-%03d", n))
	}
	// Images: an own layer and shared base layers from a pool.
	pool := make([]digest.Digest, max(size.SharedLayersPerImage, size.Images/50))
	for i := range pool {
		pool[i] = digest.FromString(fmt.Sprintf("base layer %d", i))
	}
	for j := range size.Images {
		im := ordImage{
			manifest: digest.FromString(fmt.Sprintf("manifest %d", j)),
			config:   digest.FromString(fmt.Sprintf("config %d", j)),
			size:     int64(20<<20 + j%1000*4096),
		}
		for k := range size.SharedLayersPerImage {
			im.layers = append(im.layers, pool[(j*7+k*13)%len(pool)])
		}
		im.layers = append(im.layers, digest.FromString(fmt.Sprintf("own layer %d", j)))
		ds.images = append(ds.images, im)
	}
	// Streams and their tags; history images dealt over the tags round robin.
	type slot struct{ stream, tag int }
	var slots []slot
	for s := range max(1, size.Streams) {
		st := &ordStream{ns: ds.namespaces[s%len(ds.namespaces)], name: fmt.Sprintf("app-%d", s)}
		for t := range 1 + s%size.TagsPerStreamMax {
			st.tags = append(st.tags, ordTag{name: ordinaryTagNames[t]})
			slots = append(slots, slot{s, t})
		}
		ds.streams = append(ds.streams, st)
	}
	ds.Orphans = size.Images / 20
	for j := range size.Images - ds.Orphans {
		sl := slots[j%len(slots)]
		tag := &ds.streams[sl.stream].tags[sl.tag]
		tag.items = append(tag.items, ds.Orphans+j)
		ds.Items++
	}
	byNamespace := map[string][]int{}
	for s, st := range ds.streams {
		byNamespace[st.ns] = append(byNamespace[st.ns], s)
	}

	// used are the (stream, image) pairs a counting referrer names by digest.
	type use struct{ stream, image int }
	used := map[use]bool{}
	// pick is a stream of ns and one of its tags that has items.
	pick := func(ns string) (int, *ordTag) {
		ss := byNamespace[ns]
		for {
			s := ss[rng.IntN(len(ss))]
			tag := &ds.streams[s].tags[rng.IntN(len(ds.streams[s].tags))]
			if len(tag.items) > 0 {
				return s, tag
			}
		}
	}
	// byDigest is a reference to one revision of the tag: an old one when old says so and the
	// tag has one, else one of the kept newest.
	byDigest := func(s int, tag *ordTag, old bool) (rev int) {
		if old && len(tag.items) > ordinaryKeepTagRevisions {
			return ordinaryKeepTagRevisions + rng.IntN(len(tag.items)-ordinaryKeepTagRevisions)
		}
		return rng.IntN(min(len(tag.items), ordinaryKeepTagRevisions))
	}
	pullSpec := func(s int, tag *ordTag, rev int) string {
		st := ds.streams[s]
		if rev < 0 {
			return fmt.Sprintf("%s/%s/%s:%s", ordinaryRegistryHost, st.ns, st.name, tag.name)
		}
		return fmt.Sprintf("%s/%s/%s@%s", ordinaryRegistryHost, st.ns, st.name, ds.images[tag.items[rev]].manifest)
	}
	// reference is one container's image, and the (stream, image) it keeps by digest if any.
	reference := func(ns string) (string, *use) {
		r := rng.Float64()
		switch {
		case r < 0.60:
			ds.ByTag++
			s, tag := pick(ns)
			return pullSpec(s, tag, -1), nil
		case r < 0.85:
			ds.ByDigest++
			s, tag := pick(ns)
			rev := byDigest(s, tag, rng.IntN(5) == 0)
			return pullSpec(s, tag, rev), &use{s, tag.items[rev]}
		default:
			ds.External++
			return externalImages[rng.IntN(len(externalImages))], nil
		}
	}
	for p := range size.Pods {
		pod := ordPod{ns: ds.namespaces[p%len(ds.namespaces)], name: fmt.Sprintf("pod-%d", p)}
		switch r := rng.Float64(); {
		case r < 0.70:
			pod.phase = corev1.PodRunning
		case r < 0.85:
			pod.phase = corev1.PodPending
		case r < 0.95:
			pod.phase = corev1.PodSucceeded
		default:
			pod.phase = corev1.PodFailed
		}
		ds.PodPhases[pod.phase]++
		counts := pod.phase == corev1.PodRunning || pod.phase == corev1.PodPending
		add := func(list *[]string) {
			ref, u := reference(pod.ns)
			*list = append(*list, ref)
			if u != nil && counts {
				used[*u] = true
			}
		}
		add(&pod.containers)
		if rng.IntN(3) == 0 {
			add(&pod.containers) // a sidecar
		}
		if rng.IntN(5) == 0 {
			add(&pod.inits)
		}
		ds.pods = append(ds.pods, pod)
	}
	kinds := []harness.ReferrerKind{
		harness.ReferrerReplicationController, harness.ReferrerReplicaSet, harness.ReferrerDeployment,
		harness.ReferrerDaemonSet, harness.ReferrerStatefulSet, harness.ReferrerJob, harness.ReferrerCronJob,
		harness.ReferrerDeploymentConfig, harness.ReferrerBuild, harness.ReferrerBuildConfig,
	}
	ds.OtherKinds = len(kinds)
	for _, kind := range kinds {
		for i := range size.Others {
			ns := ds.namespaces[rng.IntN(len(ds.namespaces))]
			s, tag := pick(ns)
			st := ds.streams[s]
			o := ordOther{kind: kind, ns: ns, name: fmt.Sprintf("%s-%d", lower(kind), i)}
			rev := -1
			if i%2 == 1 {
				rev = byDigest(s, tag, true)
				used[use{s, tag.items[rev]}] = true
			}
			switch kind {
			case harness.ReferrerBuild, harness.ReferrerBuildConfig:
				from := &corev1.ObjectReference{Kind: "ImageStreamTag", Name: st.name + ":" + tag.name}
				if rev >= 0 {
					from = &corev1.ObjectReference{
						Kind: "ImageStreamImage", Name: st.name + "@" + ds.images[tag.items[rev]].manifest.String(),
					}
				}
				o.spec = harness.ReferrerSpec{From: from, BuildStrategy: buildv1.SourceBuildStrategyType}
			default:
				o.spec = harness.ReferrerSpec{Images: []string{pullSpec(s, tag, rev)}}
			}
			ds.others = append(ds.others, o)
		}
	}

	// What the prune must decide: every revision past the kept ones goes, unless a counting
	// referrer names it by digest; its Image goes with it (each Image is in one item), and so
	// do the Images in no stream.
	ds.Expect.DeletedImages = ds.Orphans
	for s, st := range ds.streams {
		updated := false
		for _, tag := range st.tags {
			for rev, im := range tag.items {
				if rev < ordinaryKeepTagRevisions {
					continue
				}
				if used[use{s, im}] {
					ds.Expect.KeptByDigest++
					continue
				}
				ds.Expect.DeletedItems++
				ds.Expect.DeletedImages++
				updated = true
			}
		}
		if updated {
			ds.Expect.UpdatedStreams++
		}
	}
	return ds
}

func lower(k harness.ReferrerKind) string {
	b := []byte(k)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// apiImage is the Image of im, with metadata of a realistic size (OpenShift's Images carry
// the image's config: environment, labels, command, ports), so that the prune reads what a
// cluster holds rather than a skeleton.
func (im *ordImage) apiImage(j int) *imagev1.Image {
	img := &imagev1.Image{
		ObjectMeta: metav1.ObjectMeta{
			Name:        im.manifest.String(),
			Annotations: map[string]string{"openshift.io/image.managed": "true"},
		},
		DockerImageReference:         ordinaryRegistryHost + "/bench/image@" + im.manifest.String(),
		DockerImageManifestMediaType: mediaTypeManifest,
		DockerImageMetadataVersion:   "1.0",
	}
	for _, l := range im.layers {
		img.DockerImageLayers = append(img.DockerImageLayers,
			imagev1.ImageLayer{Name: l.String(), LayerSize: 5 << 20, MediaType: mediaTypeLayer})
	}
	config := map[string]any{
		"Env": []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"container=oci", "HOME=/opt/app-root/src", fmt.Sprintf("APP_BUILD=%d", j),
		},
		"Cmd":          []string{"/usr/libexec/s2i/run"},
		"WorkingDir":   "/opt/app-root/src",
		"ExposedPorts": map[string]any{"8080/tcp": map[string]any{}},
		"Labels": map[string]string{
			"io.k8s.description":           "Platform for building and running applications",
			"io.openshift.expose-services": "8080:http",
			"io.openshift.tags":            "builder,app",
			"vcs-ref":                      fmt.Sprintf("%040x", j),
			"build-date":                   "2026-11-02T10:00:00",
		},
	}
	meta, _ := json.Marshal(map[string]any{
		"kind":            "DockerImage",
		"apiVersion":      "1.0",
		"Id":              im.config.String(),
		"Created":         "2026-11-02T10:00:00Z",
		"Architecture":    "amd64",
		"Size":            im.size,
		"Config":          config,
		"ContainerConfig": map[string]any{},
	})
	img.DockerImageMetadata = runtime.RawExtension{Raw: meta}
	return img
}

// apiStream is the ImageStream of st, its tag histories in the status (the image API server
// keeps them at create), the items a day apart, newest first.
func (ds *OrdinaryDataset) apiStream(st *ordStream, now time.Time) *imagev1.ImageStream {
	is := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: st.ns, Name: st.name}}
	is.Status.DockerImageRepository = ordinaryRegistryHost + "/" + st.ns + "/" + st.name
	for _, tag := range st.tags {
		tl := imagev1.NamedTagEventList{Tag: tag.name}
		for rev, im := range tag.items {
			d := ds.images[im].manifest.String()
			tl.Items = append(tl.Items, imagev1.TagEvent{
				Created:              metav1.NewTime(now.Add(-time.Duration(rev+1) * 24 * time.Hour)),
				DockerImageReference: is.Status.DockerImageRepository + "@" + d,
				Image:                d,
				Generation:           int64(len(tag.items) - rev),
			})
		}
		is.Status.Tags = append(is.Status.Tags, tl)
	}
	return is
}

// apiPod is the pod p as a controller would create it (labels, an owner, resources, probes,
// environment, a node), so that the pod list the prune reads is of a realistic size.
func (p *ordPod) apiPod(i int) *corev1.Pod {
	container := func(k int, name, image string) corev1.Container {
		return corev1.Container{
			Name:  name,
			Image: image,
			Ports: []corev1.ContainerPort{
				{Name: fmt.Sprintf("http-%d", k), ContainerPort: 8080 + int32(k), Protocol: corev1.ProtocolTCP},
			},
			Env: []corev1.EnvVar{
				{Name: "APP_ENV", Value: "production"},
				{Name: "LOG_LEVEL", Value: "info"},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
				},
				Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
			},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080 + int32(k))},
			}, PeriodSeconds: 10},
			ImagePullPolicy: corev1.PullIfNotPresent,
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.ns,
			Name:      p.name,
			Labels:    map[string]string{"app": fmt.Sprintf("app-%d", i%97), "pod-template-hash": fmt.Sprintf("%x", i%4096)},
			Annotations: map[string]string{
				"openshift.io/scc": "restricted-v2",
				"k8s.ovn.org/pod-networks": fmt.Sprintf(
					`{"default":{"ip_addresses":["10.128.%d.%d/23"],"mac_address":"0a:58:0a:80:00:05","role":"primary"}}`,
					i/250%256, i%250),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: fmt.Sprintf("app-%d-%x", i%97, i%4096),
				UID: "00000000-0000-0000-0000-000000000000", Controller: ptr(true),
			}},
		},
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("worker-%d", i%20), RestartPolicy: corev1.RestartPolicyAlways},
	}
	if p.phase == corev1.PodSucceeded || p.phase == corev1.PodFailed {
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	for k, image := range p.inits {
		c := container(k, fmt.Sprintf("init-%d", k), image)
		c.ReadinessProbe, c.Ports = nil, nil
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
	}
	for k, image := range p.containers {
		pod.Spec.Containers = append(pod.Spec.Containers, container(k, fmt.Sprintf("c-%d", k), image))
	}
	return pod
}

// podStatus is the status a kubelet would have written for the pod's phase.
func (p *ordPod) podStatus(pod *corev1.Pod, now time.Time) corev1.PodStatus {
	st := pod.Status
	st.Phase = p.phase
	start := metav1.NewTime(now.Add(-time.Hour))
	st.StartTime = &start
	st.HostIP, st.PodIP = "10.0.0.10", "10.128.0.5"
	ready := corev1.ConditionTrue
	if p.phase != corev1.PodRunning {
		ready = corev1.ConditionFalse
	}
	for _, t := range []corev1.PodConditionType{
		corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled,
	} {
		status := corev1.ConditionTrue
		if t == corev1.PodReady || t == corev1.ContainersReady {
			status = ready
		}
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: status, LastTransitionTime: start})
	}
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: p.phase == corev1.PodRunning,
			ContainerID: "cri-o://" + digest.FromString(pod.Namespace+"/"+pod.Name+"/"+c.Name).Encoded(),
		}
		switch p.phase {
		case corev1.PodRunning:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: start}
			cs.Started = ptr(true)
		default:
			code := int32(0)
			if p.phase == corev1.PodFailed {
				code = 1
			}
			cs.State.Terminated = &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: "Completed", StartedAt: start, FinishedAt: metav1.NewTime(now),
			}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	return st
}

func ptr[T any](v T) *T { return &v }
