package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// clusterRegistry is the host the referrers' image references name: OpenShift's internal
// registry address. The ordinary prune ignores the host, as oc does.
const clusterRegistry = "image-registry.openshift-image-registry.svc:5000"

// imagesWorld is a cluster, a registry over filesystem storage, and the ordinary prune run as
// a service account bound to system:image-pruner and nothing more.
type imagesWorld struct {
	*env
	cluster *harness.Cluster
	// prunerKubeconfig reaches the cluster as the pruner service account.
	prunerKubeconfig string
}

func newImagesWorld(t *testing.T) *imagesWorld {
	t.Helper()
	return newImagesWorldWith(t, harness.ClusterOptions{})
}

func newImagesWorldWith(t *testing.T, opts harness.ClusterOptions) *imagesWorld {
	t.Helper()
	w := newImagesClusterWith(t, opts)
	w.startRegistry()
	return w
}

// newImagesCluster is newImagesWorld without the registry, for a test that starts its own.
func newImagesCluster(t *testing.T) *imagesWorld {
	t.Helper()
	return newImagesClusterWith(t, harness.ClusterOptions{})
}

func newImagesClusterWith(t *testing.T, opts harness.ClusterOptions) *imagesWorld {
	t.Helper()
	requireRegistryBinary(t)
	cluster := harness.StartClusterWithOptionsT(t, opts)
	ctx := context.Background()
	sa := harness.KubeServiceAccount("openshift-image-registry", "pruner")
	if err := cluster.BindImagePruner(ctx, sa); err != nil {
		t.Fatal(err)
	}
	token, err := cluster.CreateServiceAccountToken(ctx, "openshift-image-registry", "pruner")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "pruner.kubeconfig")
	if err := cluster.KubeconfigFor(kubeconfig, token); err != nil {
		t.Fatal(err)
	}
	return &imagesWorld{env: newClusterEnv(t, cluster), cluster: cluster, prunerKubeconfig: kubeconfig}
}

// pruneImages runs `dockerregistry -prune-images args... config.yml` as the pruner.
func (w *imagesWorld) pruneImages(args ...string) harness.PruneResult {
	w.t.Helper()
	// The blobs were all written a moment ago: the grace period that keeps blobs a push may be
	// reusing is set to nothing.
	args = append([]string{"-prune-images", "-prune-keep-younger-than=0s"}, args...)
	return w.prune([]string{"KUBECONFIG=" + w.prunerKubeconfig}, args...)
}

// pushed is an image the test pushed, by the name the test gave it.
type pushed struct {
	img    v1.Image
	digest v1.Hash
	blobs  []v1.Hash // manifest, config, layers
}

// scenario is one row's namespace: what it pushed, and what the test knows of storage.
type scenario struct {
	w      *imagesWorld
	ns     string
	images map[string]*pushed
	// tags are, per repository and tag, the manifests pushed to it in order.
	tags map[string]map[string][]v1.Hash
}

func (w *imagesWorld) scenario(ns string) *scenario {
	if err := w.cluster.CreateNamespace(context.Background(), ns); err != nil {
		w.t.Fatal(err)
	}
	return &scenario{w: w, ns: ns, images: map[string]*pushed{}, tags: map[string]map[string][]v1.Hash{}}
}

// push pushes the image called label (made once, its layers unique to the namespace unless
// shared names a layer content) to <ns>/<stream>:<tag>.
func (s *scenario) push(streamTag, label string, shared ...string) *pushed {
	s.w.t.Helper()
	p := s.images[label]
	if p == nil {
		layers := append([]string{s.ns + "/" + label + " layer"}, shared...)
		img := image(s.w.t, s.ns+"/"+label, layers...)
		p = &pushed{img: img, digest: digestOf(s.w.t, img), blobs: blobsOf(s.w.t, img)}
		s.images[label] = p
	}
	s.w.mustPush(s.ns+"/"+streamTag, p.img)
	stream, tag, _ := strings.Cut(streamTag, ":")
	repo := s.ns + "/" + stream
	if s.tags[repo] == nil {
		s.tags[repo] = map[string][]v1.Hash{}
	}
	s.tags[repo][tag] = append(s.tags[repo][tag], p.digest)
	return p
}

// history is the tag's history as the image API holds it: labels, newest first.
func (s *scenario) history(stream, tag string) []string {
	s.w.t.Helper()
	is, err := s.w.images.ImageStreams(s.ns).Get(context.Background(), stream, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		s.w.t.Fatal(err)
	}
	for _, t := range is.Status.Tags {
		if t.Tag != tag {
			continue
		}
		var out []string
		for _, item := range t.Items {
			out = append(out, s.label(item.Image))
		}
		return out
	}
	return nil
}

func (s *scenario) label(d string) string {
	for l, p := range s.images {
		if p.digest.String() == d {
			return l
		}
	}
	return d
}

// age sets the created time of each item of a tag's history (newest first) to now minus the
// given ages: the image API keeps what the status says, as OpenShift's does.
func (s *scenario) age(stream, tag string, ages ...time.Duration) {
	s.w.t.Helper()
	ctx := context.Background()
	is, err := s.w.images.ImageStreams(s.ns).Get(ctx, stream, metav1.GetOptions{})
	if err != nil {
		s.w.t.Fatal(err)
	}
	now := time.Now()
	for i := range is.Status.Tags {
		if is.Status.Tags[i].Tag != tag {
			continue
		}
		items := is.Status.Tags[i].Items
		if len(items) != len(ages) {
			s.w.t.Fatalf("%s/%s:%s has %d items, %d ages given", s.ns, stream, tag, len(items), len(ages))
		}
		for j := range items {
			items[j].Created = metav1.NewTime(now.Add(-ages[j]))
		}
	}
	if _, err := s.w.images.ImageStreams(s.ns).UpdateStatus(ctx, is, metav1.UpdateOptions{}); err != nil {
		s.w.t.Fatal(err)
	}
}

func (s *scenario) refer(kind harness.ReferrerKind, name string, spec harness.ReferrerSpec) {
	s.w.t.Helper()
	if err := s.w.cluster.CreateReferrer(context.Background(), s.ns, kind, name, spec); err != nil {
		s.w.t.Fatal(err)
	}
}

// ref is the pull spec of the image called label in stream, by digest, or the tag.
func (s *scenario) byDigest(stream, label string) string {
	return clusterRegistry + "/" + s.ns + "/" + stream + "@" + s.images[label].digest.String()
}

func (s *scenario) byTag(streamTag string) string {
	return clusterRegistry + "/" + s.ns + "/" + streamTag
}

// imageExists tells whether the Image object of label is still in the API.
func (s *scenario) imageExists(label string) bool {
	s.w.t.Helper()
	_, err := s.w.images.Images().Get(context.Background(), s.images[label].digest.String(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		s.w.t.Fatal(err)
	}
	return true
}

// The storage paths of what the test pushed, relative to the storage directory, as snapshot
// lists them.

const v2root = "/docker/registry/v2"

func blobFile(d v1.Hash) string {
	return fmt.Sprintf("%s/blobs/%s/%s/%s/data", v2root, d.Algorithm, d.Hex[:2], d.Hex)
}

func manifestLinkFile(repo string, d v1.Hash) string {
	return fmt.Sprintf("%s/repositories/%s/_manifests/revisions/%s/%s/link", v2root, repo, d.Algorithm, d.Hex)
}

func layerLinkFile(repo string, d v1.Hash) string {
	return fmt.Sprintf("%s/repositories/%s/_layers/%s/%s/link", v2root, repo, d.Algorithm, d.Hex)
}

func tagIndexFile(repo, tag string, d v1.Hash) string {
	return fmt.Sprintf("%s/repositories/%s/_manifests/tags/%s/index/%s/%s/link", v2root, repo, tag, d.Algorithm, d.Hex)
}

func tagCurrentFile(repo, tag string) string {
	return fmt.Sprintf("%s/repositories/%s/_manifests/tags/%s/current/link", v2root, repo, tag)
}

// links are the files of label's image in repo: its manifest link, its layer links (config
// and layers) and the index entries of the tags it was pushed to (the current link of a tag
// whose current image it is, too, when whole).
func (s *scenario) linkFiles(stream, label string) []string {
	repo := s.ns + "/" + stream
	p := s.images[label]
	out := []string{manifestLinkFile(repo, p.digest)}
	for _, b := range p.blobs[1:] {
		out = append(out, layerLinkFile(repo, b))
	}
	for tag, hist := range s.tags[repo] {
		if slices.Contains(hist, p.digest) {
			out = append(out, tagIndexFile(repo, tag, p.digest))
			if hist[len(hist)-1] == p.digest {
				// The tag goes whole: its current link and its other index entries.
				out = append(out, tagCurrentFile(repo, tag))
				for _, other := range hist {
					if other != p.digest {
						out = append(out, tagIndexFile(repo, tag, other))
					}
				}
			}
		}
	}
	return out
}

func (s *scenario) blobFiles(label string) []string {
	var out []string
	for _, b := range s.images[label].blobs {
		out = append(out, blobFile(b))
	}
	return out
}

// files lists the storage's files (without sizes).
func (w *imagesWorld) files() map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(w.snapshot(), "\n") {
		if line == "" {
			continue
		}
		p := line[:strings.LastIndex(line, " ")]
		out[p] = true
	}
	return out
}

func removedFiles(before, after map[string]bool) []string {
	var out []string
	for p := range before {
		if !after[p] {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func uniqueSorted(ps []string) []string {
	sort.Strings(ps)
	return slices.Compact(ps)
}

// linesWith are the output lines starting with prefix, sorted.
func linesWith(out, prefix string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}

// apiState is every stream's status and every Image's name, to prove a dry run changed nothing.
func (w *imagesWorld) apiState() string {
	w.t.Helper()
	ctx := context.Background()
	streams, err := w.images.ImageStreams("").List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	images, err := w.images.Images().List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var parts []string
	for _, is := range streams.Items {
		b, _ := json.Marshal(is.Status.Tags)
		parts = append(parts, is.Namespace+"/"+is.Name+" "+string(b))
	}
	for _, img := range images.Items {
		parts = append(parts, img.Name)
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// clean removes the row's streams and every Image, so that the next row's prune (which reads
// the whole cluster) sees only its own.
func (w *imagesWorld) clean(namespaces ...string) {
	w.t.Helper()
	ctx := context.Background()
	for _, ns := range namespaces {
		streams, err := w.images.ImageStreams(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			w.t.Fatal(err)
		}
		for _, is := range streams.Items {
			if err := w.images.ImageStreams(ns).Delete(ctx, is.Name, metav1.DeleteOptions{}); err != nil {
				w.t.Fatal(err)
			}
		}
	}
	images, err := w.images.Images().List(ctx, metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, img := range images.Items {
		if err := w.images.Images().Delete(ctx, img.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			w.t.Fatal(err)
		}
	}
}

// nonName is what a namespace name cannot hold.
var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// pruneRow is one condition of the ordinary prune: a namespace set up, the flags, and what
// must go.
type pruneRow struct {
	name  string
	flags []string
	setup func(s *scenario)
	// history is, per "stream:tag", the labels the tag's history keeps, newest first (nil: the
	// tag is gone).
	history map[string][]string
	// deleted are the labels whose Images go.
	deleted []string
	// removed are the storage files that go, from the scenario (links and blobs).
	removed func(s *scenario) []string
	// summary is the last line of the output.
	summary string
	// pulls are the "stream:tag" that must still pull, with the label they serve.
	pulls map[string]string
}

// TestPruneImagesConditions runs the ordinary prune (`dockerregistry -prune-images`) against a
// real kube-apiserver with the image API aggregated and OpenShift's workload APIs as CRDs, as
// a service account holding system:image-pruner only: each row in its own namespace, first as
// a dry run (which must change nothing in the API nor in storage and print the same plan),
// then with --confirm, asserting the tag histories left, the Images deleted, the exact storage
// files removed, the summary, and that what is kept still pulls.
func TestPruneImagesConditions(t *testing.T) {
	w := newImagesWorld(t)
	old := 2 * time.Hour

	rows := []pruneRow{
		{
			name:  "tag revisions",
			flags: []string{"--keep-younger-than=0s"},
			setup: func(s *scenario) {
				for _, l := range []string{"r1", "r2", "r3", "r4", "r5"} {
					s.push("app:latest", l, s.ns+" base")
				}
				s.push("other:v1", "o1")
			},
			history: map[string][]string{"app:latest": {"r5", "r4", "r3"}, "other:v1": {"o1"}},
			deleted: []string{"r1", "r2"},
			removed: func(s *scenario) []string {
				// base is shared with the images kept: its link and blob stay.
				base := s.images["r1"].blobs[3]
				keep := map[string]bool{layerLinkFile(s.ns+"/app", base): true, blobFile(base): true}
				var out []string
				for _, l := range []string{"r1", "r2"} {
					for _, f := range append(s.linkFiles("app", l), s.blobFiles(l)...) {
						if !keep[f] {
							out = append(out, f)
						}
					}
				}
				return out
			},
			summary: "Summary: deleted 2 image object(s), deleted 2 image stream tag item(s), updated 1 image stream(s), " +
				"deleted 4 layer link(s), deleted 2 manifest link(s), deleted 6 blob(s)",
			pulls: map[string]string{"app:latest": "r5", "other:v1": "o1"},
		},
		{
			// The one row that waits: streams, Images and pods get their creation time from
			// the servers, so "old" ones are made, then the age passes.
			name:  "ages: young items, Images and pods stay",
			flags: []string{"--keep-younger-than=20s"},
			setup: func(s *scenario) {
				for _, l := range []string{"y0", "y1", "y2", "y3", "y4"} {
					s.push("app:latest", l)
				}
				for _, l := range []string{"p0", "p1", "p2", "p3"} {
					s.push("app:pod", l)
				}
				// An ended pod older than the age protects nothing.
				s.refer(harness.ReferrerPod, "old-done", harness.ReferrerSpec{
					Images: []string{s.byDigest("app", "y0")}, PodPhase: corev1.PodSucceeded})
				time.Sleep(21 * time.Second)
				// An ended pod younger than the age still protects what it names.
				s.refer(harness.ReferrerPod, "young-failed", harness.ReferrerSpec{
					Images: []string{s.byDigest("app", "p0")}, PodPhase: corev1.PodFailed})
				// zy's Image is young; its item, made old, is at position 3 and goes.
				for _, l := range []string{"zy", "w1", "w2", "w3"} {
					s.push("app:young", l)
				}
				s.age("app", "young", old, old, old, old)
				// y1's item is young at position 3: it stays; y0's is old at position 4.
				s.age("app", "latest", old, old, old, 0, old)
			},
			history: map[string][]string{
				"app:latest": {"y4", "y3", "y2", "y1"},
				"app:pod":    {"p3", "p2", "p1", "p0"},
				"app:young":  {"w3", "w2", "w1"},
			},
			deleted: []string{"y0"},
			removed: func(s *scenario) []string {
				return append(append(s.linkFiles("app", "y0"), s.blobFiles("y0")...), s.linkFiles("app", "zy")...)
			},
			summary: "Summary: deleted 1 image object(s), deleted 2 image stream tag item(s), updated 1 image stream(s), " +
				"deleted 4 layer link(s), deleted 2 manifest link(s), deleted 3 blob(s)",
			pulls: map[string]string{"app:latest": "y4", "app:young": "w3"},
		},
		{
			name:  "a young stream keeps everything",
			flags: []string{"--keep-younger-than=1h", "--keep-tag-revisions=0"},
			setup: func(s *scenario) {
				s.push("app:latest", "s1")
				s.push("app:latest", "s2")
				s.age("app", "latest", old, old)
			},
			history: map[string][]string{"app:latest": {"s2", "s1"}},
			removed: func(*scenario) []string { return nil },
			summary: "Summary: deleted 0 objects",
			pulls:   map[string]string{"app:latest": "s2"},
		},
		{
			name:  "a tag in use keeps its current image only",
			flags: []string{"--keep-younger-than=0s", "--keep-tag-revisions=0"},
			setup: func(s *scenario) {
				s.push("app:used", "u1")
				s.push("app:used", "u2")
				s.push("app:unused", "n1")
				s.push("app:latest", "l1")
				s.refer(harness.ReferrerPod, "web", harness.ReferrerSpec{Images: []string{s.byTag("app:used")}, PodPhase: corev1.PodRunning})
				// No tag means latest.
				s.refer(harness.ReferrerDeployment, "api", harness.ReferrerSpec{Images: []string{clusterRegistry + "/" + s.ns + "/app"}})
			},
			history: map[string][]string{"app:used": {"u2"}, "app:unused": nil, "app:latest": {"l1"}},
			deleted: []string{"u1", "n1"},
			removed: func(s *scenario) []string {
				return append(append(append(s.linkFiles("app", "u1"), s.blobFiles("u1")...),
					s.linkFiles("app", "n1")...), s.blobFiles("n1")...)
			},
			summary: "Summary: deleted 2 image object(s), deleted 2 image stream tag item(s), updated 1 image stream(s), " +
				"deleted 4 layer link(s), deleted 2 manifest link(s), deleted 6 blob(s)",
			pulls: map[string]string{"app:used": "u2", "app:latest": "l1"},
		},
		{
			name:  "digest references keep their stream's revisions",
			flags: []string{"--keep-younger-than=0s", "--keep-tag-revisions=0"},
			setup: func(s *scenario) {
				s.push("app:latest", "d1")
				s.push("app:latest", "d2")
				s.push("app:latest", "d3")
				s.push("other:latest", "x1")
				s.refer(harness.ReferrerPod, "running", harness.ReferrerSpec{
					Images: []string{s.byDigest("app", "d1")}, PodPhase: corev1.PodRunning})
				// A pod that ended protects nothing once older than the age (here: any).
				s.refer(harness.ReferrerPod, "done", harness.ReferrerSpec{
					Images: []string{s.byDigest("app", "d2")}, PodPhase: corev1.PodSucceeded})
				s.refer(harness.ReferrerBuildConfig, "bc", harness.ReferrerSpec{From: &corev1.ObjectReference{
					Kind: "ImageStreamImage", Name: "app@" + s.images["d3"].digest.String()}})
				// x1's digest under another stream's name protects nothing of other.
				s.refer(harness.ReferrerJob, "job", harness.ReferrerSpec{Images: []string{
					clusterRegistry + "/" + s.ns + "/app@" + s.images["x1"].digest.String()}})
			},
			history: map[string][]string{"app:latest": {"d3", "d1"}, "other:latest": nil},
			deleted: []string{"d2", "x1"},
			removed: func(s *scenario) []string {
				repo := s.ns + "/app"
				d2 := s.images["d2"]
				out := []string{manifestLinkFile(repo, d2.digest), tagIndexFile(repo, "latest", d2.digest)}
				for _, b := range d2.blobs[1:] {
					out = append(out, layerLinkFile(repo, b))
				}
				return append(append(append(out, s.blobFiles("d2")...), s.linkFiles("other", "x1")...), s.blobFiles("x1")...)
			},
			summary: "Summary: deleted 2 image object(s), deleted 2 image stream tag item(s), updated 2 image stream(s), " +
				"deleted 4 layer link(s), deleted 2 manifest link(s), deleted 6 blob(s)",
			pulls: map[string]string{"app:latest": "d3"},
		},
		{
			name:  "every kind of referrer",
			flags: []string{"--keep-younger-than=0s", "--keep-tag-revisions=0"},
			setup: func(s *scenario) {
				tag := func(kind string) string { return "app:" + strings.ToLower(kind) }
				for _, k := range []harness.ReferrerKind{
					harness.ReferrerReplicationController, harness.ReferrerReplicaSet, harness.ReferrerDaemonSet,
					harness.ReferrerStatefulSet, harness.ReferrerCronJob, harness.ReferrerDeploymentConfig,
				} {
					s.push(tag(string(k)), strings.ToLower(string(k)))
					s.refer(k, "r", harness.ReferrerSpec{Images: []string{s.byTag(tag(string(k)))}})
				}
				s.push("app:init", "init")
				s.refer(harness.ReferrerPod, "init", harness.ReferrerSpec{
					Images: []string{"busybox"}, InitImages: []string{s.byTag("app:init")}, PodPhase: corev1.PodPending})
				s.push("app:build", "build")
				s.refer(harness.ReferrerBuild, "b", harness.ReferrerSpec{From: &corev1.ObjectReference{
					Kind: "DockerImage", Name: s.byTag("app:build")}, BuildStrategy: "Docker"})
				s.push("app:istag", "istag")
				s.refer(harness.ReferrerBuildConfig, "bc", harness.ReferrerSpec{From: &corev1.ObjectReference{
					Kind: "ImageStreamTag", Name: "app:istag", Namespace: s.ns}, BuildStrategy: "Custom"})
				s.push("app:none", "none")
			},
			history: map[string][]string{
				"app:replicationcontroller": {"replicationcontroller"}, "app:replicaset": {"replicaset"},
				"app:daemonset": {"daemonset"}, "app:statefulset": {"statefulset"}, "app:cronjob": {"cronjob"},
				"app:deploymentconfig": {"deploymentconfig"}, "app:init": {"init"}, "app:build": {"build"},
				"app:istag": {"istag"}, "app:none": nil,
			},
			deleted: []string{"none"},
			removed: func(s *scenario) []string { return append(s.linkFiles("app", "none"), s.blobFiles("none")...) },
			summary: "Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s), " +
				"deleted 2 layer link(s), deleted 1 manifest link(s), deleted 3 blob(s)",
			pulls: map[string]string{"app:cronjob": "cronjob", "app:istag": "istag"},
		},
		{
			name:  "a namespaced prune never deletes Images nor blobs",
			flags: []string{"--keep-younger-than=0s", "--keep-tag-revisions=0", "--namespace=NS"},
			setup: func(s *scenario) {
				s.push("app:latest", "a1")
				s.push("app:latest", "a2")
			},
			history: map[string][]string{"app:latest": nil},
			removed: func(s *scenario) []string {
				return append(s.linkFiles("app", "a1"), s.linkFiles("app", "a2")...)
			},
			summary: "Summary: deleted 2 image stream tag item(s), updated 1 image stream(s), deleted 4 layer link(s), " +
				"deleted 2 manifest link(s)",
		},
		{
			name:  "-prune-registry=false changes the API only",
			flags: []string{"--keep-younger-than=0s", "--keep-tag-revisions=1", "--prune-registry=false"},
			setup: func(s *scenario) {
				s.push("app:latest", "p1")
				s.push("app:latest", "p2")
			},
			history: map[string][]string{"app:latest": {"p2"}},
			deleted: []string{"p1"},
			removed: func(*scenario) []string { return nil },
			summary: "Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s)",
			pulls:   map[string]string{"app:latest": "p2"},
		},
		{
			name:  "an index's children go with it, and stay with the index kept",
			flags: []string{"--keep-younger-than=0s", "--keep-tag-revisions=1"},
			setup: func(s *scenario) {
				for _, gen := range []string{"1", "2"} {
					amd := image(s.w.t, s.ns+"/amd"+gen, s.ns+" amd"+gen+" layer")
					arm := image(s.w.t, s.ns+"/arm"+gen, s.ns+" arm"+gen+" layer")
					idx := harness.PlatformIndex(amd, arm)
					if err := remote.WriteIndex(s.w.ref(s.ns+"/multi:latest"), idx, s.w.remoteAuth()); err != nil {
						s.w.t.Fatal(err)
					}
					d, _ := idx.Digest()
					s.images["idx"+gen] = &pushed{digest: d, blobs: []v1.Hash{d}}
					s.images["amd"+gen] = &pushed{img: amd, digest: digestOf(s.w.t, amd), blobs: blobsOf(s.w.t, amd)}
					s.images["arm"+gen] = &pushed{img: arm, digest: digestOf(s.w.t, arm), blobs: blobsOf(s.w.t, arm)}
					if s.tags[s.ns+"/multi"] == nil {
						s.tags[s.ns+"/multi"] = map[string][]v1.Hash{}
					}
					s.tags[s.ns+"/multi"]["latest"] = append(s.tags[s.ns+"/multi"]["latest"], d)
				}
			},
			history: map[string][]string{"multi:latest": {"idx2"}},
			deleted: []string{"idx1", "amd1", "arm1"},
			removed: func(s *scenario) []string {
				repo := s.ns + "/multi"
				idx1 := s.images["idx1"].digest
				out := []string{manifestLinkFile(repo, idx1), tagIndexFile(repo, "latest", idx1), blobFile(idx1)}
				// Better than oc: the children's links go with the index that named them.
				for _, l := range []string{"amd1", "arm1"} {
					out = append(append(out, s.blobFiles(l)...), manifestLinkFile(repo, s.images[l].digest))
					for _, b := range s.images[l].blobs[1:] {
						out = append(out, layerLinkFile(repo, b))
					}
				}
				return out
			},
			summary: "Summary: deleted 3 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s), " +
				"deleted 4 layer link(s), deleted 3 manifest link(s), deleted 7 blob(s)",
		},
	}

	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			w.t = t
			ns := "r-" + strings.Trim(nonName.ReplaceAllString(strings.ToLower(row.name), "-"), "-")
			ns = strings.Trim(ns[:min(len(ns), 40)], "-")
			s := w.scenario(ns)
			row.setup(s)
			flags := slices.Clone(row.flags)
			for i, f := range flags {
				flags[i] = strings.ReplaceAll(f, "=NS", "="+ns)
			}
			defer w.clean(ns)

			filesBefore, apiBefore := w.files(), w.apiState()
			dry := w.pruneImages(flags...)
			if dry.ExitCode != 0 {
				t.Fatalf("dry run: exit %d\nstdout:\n%s\nstderr:\n%s", dry.ExitCode, dry.Stdout, dry.Stderr)
			}
			if !strings.Contains(dry.Stderr, "Dry run enabled - no modifications will be made. Add --confirm to remove images") {
				t.Errorf("dry run without its header:\n%s", dry.Stderr)
			}
			if got := removedFiles(filesBefore, w.files()); len(got) > 0 || w.apiState() != apiBefore {
				t.Fatalf("the dry run changed something: removed %q", got)
			}

			res := w.pruneImages(append(flags, "--confirm")...)
			if res.ExitCode != 0 {
				t.Fatalf("confirm: exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
			}
			lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
			if got := lines[len(lines)-1]; got != row.summary {
				t.Errorf("summary:\n got %s\nwant %s\nstdout:\n%s", got, row.summary, res.Stdout)
			}
			// The dry run printed the same plan.
			for _, prefix := range []string{"Deleting", "Summary"} {
				if d, c := linesWith(dry.Stdout, prefix), linesWith(res.Stdout, prefix); !slices.Equal(d, c) {
					t.Errorf("the dry run's %q lines differ from the run's:\n%s\n---\n%s", prefix, strings.Join(d, "\n"), strings.Join(c, "\n"))
				}
			}
			for st, want := range row.history {
				stream, tag, _ := strings.Cut(st, ":")
				if got := s.history(stream, tag); !slices.Equal(got, want) {
					t.Errorf("%s/%s history = %v, want %v", ns, st, got, want)
				}
			}
			var wantImageLines []string
			for _, l := range row.deleted {
				wantImageLines = append(wantImageLines, "Deleting image "+s.images[l].digest.String())
			}
			sort.Strings(wantImageLines)
			if got := linesWith(res.Stdout, "Deleting image "); !slices.Equal(got, wantImageLines) {
				t.Errorf("image lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantImageLines, "\n"))
			}
			for l := range s.images {
				if want := !slices.Contains(row.deleted, l); s.imageExists(l) != want {
					t.Errorf("Image %s exists = %v, want %v", l, !want, want)
				}
			}
			want := uniqueSorted(row.removed(s))
			if got := removedFiles(filesBefore, w.files()); !slices.Equal(got, want) {
				t.Errorf("removed files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for st, l := range row.pulls {
				if err := w.pullsIdentical(ns+"/"+st, s.images[l].img); err != nil {
					t.Error(err)
				}
			}
		})
	}
	w.t = t
}

// TestPruneImagesInvalidReferences: one object naming an image by a reference that does not
// parse stops the ordinary prune before it changes anything, every such object named at
// once; -ignore-invalid-refs goes on.
func TestPruneImagesInvalidReferences(t *testing.T) {
	w := newImagesWorld(t)
	s := w.scenario("invalid")
	s.push("app:latest", "i1")
	s.push("app:latest", "i2")
	s.refer(harness.ReferrerPod, "bad", harness.ReferrerSpec{Images: []string{"Not A/Reference"}, PodPhase: corev1.PodRunning})
	s.refer(harness.ReferrerBuildConfig, "bad-from", harness.ReferrerSpec{From: &corev1.ObjectReference{
		Kind: "ImageStreamTag", Name: "no-tag-here"}})
	flags := []string{"--keep-younger-than=0s", "--keep-tag-revisions=1", "--confirm"}

	filesBefore, apiBefore := w.files(), w.apiState()
	res := w.pruneImages(flags...)
	if res.ExitCode != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	for _, want := range []string{
		"The following objects have invalid references:",
		`pod/bad namespace=invalid: container c0: invalid image reference "Not A/Reference"`,
		`buildconfig/bad-from namespace=invalid: invalid ImageStreamTag reference "no-tag-here"`,
		"Either fix the references or delete the objects to make the pruner proceed.",
	} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.Stderr)
		}
	}
	if got := removedFiles(filesBefore, w.files()); len(got) > 0 || w.apiState() != apiBefore {
		t.Fatalf("a refused run changed something: removed %q", got)
	}

	res = w.pruneImages(append(flags, "--ignore-invalid-refs")...)
	if res.ExitCode != 0 {
		t.Fatalf("with --ignore-invalid-refs: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if got := s.history("app", "latest"); !slices.Equal(got, []string{"i2"}) {
		t.Errorf("history %v, want [i2]", got)
	}
	if s.imageExists("i1") {
		t.Error("i1's Image was kept")
	}
}

// TestPruneImagesSizeLimit: --prune-over-size-limit removes, at any position, the revisions
// whose Image exceeds the smallest openshift.io/Image max storage of the namespace's
// LimitRanges, keeps the others, and keeps everything where no limit is set.
func TestPruneImagesSizeLimit(t *testing.T) {
	w := newImagesWorld(t)
	s := w.scenario("sizes")
	small := s.push("app:small", "small")
	big := image(t, "sizes/big", strings.Repeat("big layer ", 20000))
	s.images["big"] = &pushed{img: big, digest: digestOf(t, big), blobs: blobsOf(t, big)}
	w.mustPush("sizes/app:big", big)
	s.tags["sizes/app"]["big"] = []v1.Hash{s.images["big"].digest}
	// The same image, tagged in a namespace without a limit.
	free := w.scenario("free")
	free.images["big"] = s.images["big"]
	w.mustPush("free/app:big", big)
	_ = small

	size := func(d v1.Hash) int64 {
		img, err := w.images.Images().Get(context.Background(), d.String(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Size int64 }
		if err := json.Unmarshal(img.DockerImageMetadata.Raw, &meta); err != nil || meta.Size == 0 {
			t.Fatalf("image %s: no size in its metadata (%v): %s", d, err, img.DockerImageMetadata.Raw)
		}
		return meta.Size
	}
	smallSize, bigSize := size(s.images["small"].digest), size(s.images["big"].digest)
	limit := (smallSize + bigSize) / 2
	s.refer(harness.ReferrerLimitRange, "images", harness.ReferrerSpec{MaxImageStorage: fmt.Sprint(limit)})
	s.refer(harness.ReferrerLimitRange, "looser", harness.ReferrerSpec{MaxImageStorage: fmt.Sprint(bigSize * 10)})

	res := w.pruneImages("--prune-over-size-limit", "--confirm")
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if got := s.history("app", "big"); got != nil {
		t.Errorf("sizes/app:big history %v, want gone", got)
	}
	if got := s.history("app", "small"); !slices.Equal(got, []string{"small"}) {
		t.Errorf("sizes/app:small history %v, want [small]", got)
	}
	if got := free.history("app", "big"); !slices.Equal(got, []string{"big"}) {
		t.Errorf("free/app:big history %v, want [big] (no limit there)", got)
	}
	// free's stream still names the big image, so its Image stays.
	if !s.imageExists("big") || !s.imageExists("small") {
		t.Error("an Image still named by a stream was deleted")
	}
	if err := w.pullsIdentical("free/app:big", big); err != nil {
		t.Error(err)
	}

	res = w.pruneImages("--prune-over-size-limit", "--keep-tag-revisions=1")
	if res.ExitCode != exitUsageCode ||
		!strings.Contains(res.Stderr, "--prune-over-size-limit cannot be specified with --keep-tag-revisions nor --keep-younger-than") {
		t.Errorf("size limit with revisions: exit %d\n%s", res.ExitCode, res.Stderr)
	}
}

// exitUsageCode is the binary's exit code for a wrong command line.
const exitUsageCode = 2

// TestPruneImagesExternalImagesWithAllFalse: with --all=false only the Images the registry
// manages (pushed to it) are deleted; the history items of the others go all the same.
func TestPruneImagesExternalImagesWithAllFalse(t *testing.T) {
	w := newImagesWorld(t)
	s := w.scenario("external")
	s.push("app:latest", "mirrored")
	s.push("app:latest", "pushed")
	s.push("app:latest", "current")
	ctx := context.Background()
	img, err := w.images.Images().Get(ctx, s.images["mirrored"].digest.String(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(img.Annotations, imagev1.ManagedByOpenShiftAnnotation)
	if _, err := w.images.Images().Update(ctx, img, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res := w.pruneImages("--keep-younger-than=0s", "--keep-tag-revisions=1", "--all=false", "--confirm")
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if got := s.history("app", "latest"); !slices.Equal(got, []string{"current"}) {
		t.Errorf("history %v, want [current]", got)
	}
	if !s.imageExists("mirrored") || s.imageExists("pushed") {
		t.Errorf("Images: mirrored kept = %v (want true), pushed kept = %v (want false)",
			s.imageExists("mirrored"), s.imageExists("pushed"))
	}
	if !w.blobExists(s.images["mirrored"].blobs[2]) {
		t.Error("the external image's layer was deleted")
	}
}

// TestPruneImagesWithoutStorageConfig: away from the registry (a CronJob with -registry-url,
// no registry configuration), -prune-images reads the cluster with its credentials alone; a
// confirmed run that would delete in storage without a configuration says what to pass.
func TestPruneImagesWithoutStorageConfig(t *testing.T) {
	w := newImagesWorld(t)
	s := w.scenario("away")
	s.push("app:latest", "w1")
	s.push("app:latest", "w2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := []string{"KUBECONFIG=" + w.prunerKubeconfig, "REGISTRY_CONFIGURATION_PATH="}
	res, err := harness.RunPrune(ctx, env, "-prune-images", "--keep-younger-than=0s", "--keep-tag-revisions=1")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Summary: deleted 1 image object(s), deleted 1 image stream tag item(s)") {
		t.Errorf("dry run without a configuration: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	res, err = harness.RunPrune(ctx, env, "-prune-images", "--keep-younger-than=0s", "--keep-tag-revisions=1", "--confirm")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, "pass -registry-url to delete through the registry instead") {
		t.Errorf("confirm without a configuration: exit %d\n%s", res.ExitCode, res.Stderr)
	}
	if got := s.history("app", "latest"); !slices.Equal(got, []string{"w2", "w1"}) {
		t.Errorf("a refused run changed the history: %v", got)
	}
}

// TestPruneImagesTroubleshootingExample is the seeds' "why is my image not pruned?" case: an
// image at myapp:v2 position 4 out of 5, myapp:v2.1 1 out of 2 and myapp:v2.1-may-2016 0 out of
// 1 (positions count from the tag's current image, 0). With the default three revisions it
// stays, held by the two newer tags; with --keep-tag-revisions=0 it goes; -prune-explain says
// why each time, position by position, as one command.
func TestPruneImagesTroubleshootingExample(t *testing.T) {
	w := newImagesWorld(t)
	s := w.scenario("shop")
	s.push("myapp:v2", "x")
	for _, l := range []string{"v2b", "v2c", "v2d", "v2e"} {
		s.push("myapp:v2", l)
	}
	s.push("myapp:v2.1", "x")
	s.push("myapp:v2.1", "v21b")
	s.push("myapp:v2.1-may-2016", "x")
	x := s.images["x"].digest.String()

	explain := func(flags ...string) string {
		t.Helper()
		res := w.prune([]string{"KUBECONFIG=" + w.prunerKubeconfig},
			append([]string{"-prune-explain=" + x, "-prune-keep-younger-than=0s", "--keep-younger-than=0s"}, flags...)...)
		if res.ExitCode != 0 {
			t.Fatalf("-prune-explain: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
		}
		return res.Stdout
	}
	for _, tc := range []struct {
		flags []string
		want  []string
	}{
		{nil, []string{
			"The ordinary prune (-prune-images -keep-tag-revisions=3 -keep-younger-than=0s) and image " + x + ":",
			"  shop/myapp:v2 at position 4 out of 5: goes (old-revision: ",
			"  shop/myapp:v2.1 at position 1 out of 2: stays (within-revisions: ",
			"  shop/myapp:v2.1-may-2016 at position 0 out of 1: stays (within-revisions: ",
			"  the Image stays (named-by-stream: ",
		}},
		{[]string{"--keep-tag-revisions=0"}, []string{
			"The ordinary prune (-prune-images -keep-tag-revisions=0 -keep-younger-than=0s) and image " + x + ":",
			"  shop/myapp:v2 at position 4 out of 5: goes (old-revision: ",
			"  shop/myapp:v2.1 at position 1 out of 2: goes (old-revision: ",
			"  shop/myapp:v2.1-may-2016 at position 0 out of 1: goes (old-revision: ",
			"  the Image goes (unused: ",
		}},
	} {
		out := explain(tc.flags...)
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("-prune-explain %v lacks %q:\n%s", tc.flags, want, out)
			}
		}
	}

	res := w.pruneImages("--keep-younger-than=0s", "--confirm")
	if res.ExitCode != 0 || !s.imageExists("x") {
		t.Fatalf("defaults: exit %d, Image kept %v\n%s\n%s", res.ExitCode, s.imageExists("x"), res.Stdout, res.Stderr)
	}
	if got := s.history("myapp", "v2"); !slices.Equal(got, []string{"v2e", "v2d", "v2c"}) {
		t.Errorf("myapp:v2 after the defaults: %v", got)
	}
	res = w.pruneImages("--keep-younger-than=0s", "--keep-tag-revisions=0", "--confirm")
	if res.ExitCode != 0 || s.imageExists("x") {
		t.Fatalf("-keep-tag-revisions=0: exit %d, Image kept %v\n%s\n%s", res.ExitCode, s.imageExists("x"), res.Stdout, res.Stderr)
	}
	for _, b := range s.images["x"].blobs {
		if w.blobExists(b) {
			t.Errorf("blob %s of the pruned image is still stored", b)
		}
	}
}

// TestPruneImagesOnPlainKubernetes: a cluster that does not serve DeploymentConfigs, Builds and
// BuildConfigs (plain Kubernetes) is pruned all the same, each skipped API named in a note.
func TestPruneImagesOnPlainKubernetes(t *testing.T) {
	w := newImagesWorldWith(t, harness.ClusterOptions{NoOpenShiftWorkloadAPIs: true})
	s := w.scenario("plain")
	s.push("app:latest", "k1")
	s.push("app:latest", "k2")
	res := w.pruneImages("--keep-younger-than=0s", "--keep-tag-revisions=1", "--confirm")
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	for _, api := range []string{"buildconfigs.build.openshift.io", "builds.build.openshift.io", "deploymentconfigs.apps.openshift.io"} {
		if !strings.Contains(res.Stderr, api+": not served by this cluster, skipped") {
			t.Errorf("no note for %s:\n%s", api, res.Stderr)
		}
	}
	if got := s.history("app", "latest"); !slices.Equal(got, []string{"k2"}) || s.imageExists("k1") {
		t.Errorf("history %v, k1's Image kept %v", got, s.imageExists("k1"))
	}
}

// TestPruneImagesForbidden: an account that may not read what the prune must read is refused
// with the permission it lacks and the role that grants it, and nothing changes.
func TestPruneImagesForbidden(t *testing.T) {
	w := newImagesWorld(t)
	s := w.scenario("locked")
	s.push("app:latest", "f1")
	s.push("app:latest", "f2")
	ctx := context.Background()
	// Allowed to read images and streams, not the workloads that use them.
	reader := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "image-reader"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{"image.openshift.io"},
			Resources: []string{"images", "imagestreams"}}},
	}
	if err := w.cluster.CreateClusterRole(ctx, reader); err != nil {
		t.Fatal(err)
	}
	if err := w.cluster.BindClusterRole(ctx, "image-reader", harness.KubeServiceAccount("users", "reader")); err != nil {
		t.Fatal(err)
	}
	token, err := w.cluster.CreateServiceAccountToken(ctx, "users", "reader")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "reader.kubeconfig")
	if err := w.cluster.KubeconfigFor(kubeconfig, token); err != nil {
		t.Fatal(err)
	}
	filesBefore, apiBefore := w.files(), w.apiState()
	res := w.prune([]string{"KUBECONFIG=" + kubeconfig},
		"-prune-images", "--keep-younger-than=0s", "--keep-tag-revisions=1", "--confirm")
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, `forbidden: the pruner needs "list" on`) ||
		!strings.Contains(res.Stderr, "(bind the ClusterRole system:image-pruner)") ||
		!strings.Contains(res.Stderr, "(nothing was changed)") {
		t.Errorf("exit %d\n%s", res.ExitCode, res.Stderr)
	}
	if got := removedFiles(filesBefore, w.files()); len(got) > 0 || w.apiState() != apiBefore {
		t.Fatalf("a refused run changed something: removed %q", got)
	}
}
