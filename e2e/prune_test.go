package e2e

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/prune"
)

const noGrace = "-prune-keep-younger-than=0s"

// anyShare lets a delete run remove most of a small test registry, which the wrong-cluster
// interlock refuses by default: the tests that pass it are about something else.
const anyShare = "-prune-max-delete-ratio=1"

// TestSeedProcedure is the administrator's maintenance window, from the pushes that leave
// orphans to the registry switched back to read-write.
func TestSeedProcedure(t *testing.T) {
	seedProcedure(t, newEnv(t))
}

// seedProcedure runs the maintenance window on e's storage (filesystem or S3).
func seedProcedure(t *testing.T, e *env) {
	ctx := context.Background()
	e.startRegistry()

	// Several images in several streams, sharing a base layer.
	a1 := image(t, "a1", "base", "a1-only")
	a2 := image(t, "a2", "base", "a2-only")
	a3 := image(t, "a3", "base", "a3-only")
	b := image(t, "b", "base", "b-only")
	d := image(t, "d", "base", "d-only")
	e.mustPush("ns/app:v1", a1)
	e.mustPush("ns/app:latest", a2)
	e.mustPush("ns/app:latest", a3) // moves latest; the history is [a3, a2]
	e.mustPush("ns/other:latest", b)
	e.mustPush("ns/doomed:latest", d)

	// A multi-arch index.
	amd := image(t, "amd64", "base", "amd64-only")
	arm := image(t, "arm64", "base-arm", "arm64-only")
	idx := harness.PlatformIndex(amd, arm)
	if err := remote.WriteIndex(e.ref("ns/multi:latest"), idx); err != nil {
		t.Fatalf("pushing the index: %v", err)
	}

	// The image API saw every push.
	stream, err := e.images.ImageStreams("ns").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a2d, _ := a2.Digest()
	a3d, _ := a3.Digest()
	if got := tagHistory(stream, "latest"); !reflect.DeepEqual(got, []string{a3d.String(), a2d.String()}) {
		t.Fatalf("ns/app latest history = %v, want [a3 a2]", got)
	}
	idxd, _ := idx.Digest()
	idxImage, err := e.images.Images().Get(ctx, idxd.String(), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the index's Image: %v", err)
	}
	if len(idxImage.DockerImageManifests) != 2 {
		t.Fatalf("index Image has %d children, want 2", len(idxImage.DockerImageManifests))
	}

	// Orphans, the ways they happen:
	// - an Image deleted by hand while its tag still names it (a1 under v1);
	a1d, _ := a1.Digest()
	mustDeleteImage(t, e, a1d)
	// - the ordinary prune dropped a2 from the history and deleted its Image;
	stream.Status.Tags = trimHistory(stream.Status.Tags, "latest", a2d.String())
	if _, err := e.images.ImageStreams("ns").UpdateStatus(ctx, stream, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mustDeleteImage(t, e, a2d)
	// - a stream deleted, and its image with it;
	if err := e.images.ImageStreams("ns").Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	dd, _ := d.Digest()
	mustDeleteImage(t, e, dd)
	// - a push that died after its first layer.
	half := static.NewLayer([]byte("half-pushed layer"), types.DockerLayer)
	if err := remote.WriteLayer(e.ref("ns/app:latest").Context(), half); err != nil {
		t.Fatal(err)
	}
	halfd, _ := half.Digest()

	// What must go: each orphan's manifest, config and own layers; never a shared one.
	gone := []v1.Hash{halfd}
	for _, img := range []v1.Image{a1, a2, d} {
		bl := blobsOf(t, img)
		gone = append(gone, bl[0], bl[1], bl[3]) // manifest, config, the image's own layer
	}
	var wantBytes int64
	for _, h := range gone {
		wantBytes += e.blobSize(h)
	}

	// Read-only, the way the registry operator sets it.
	e.startRegistry(`REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`)
	if err := e.push("ns/app:blocked", image(t, "blocked", "blocked-layer")); err == nil {
		t.Fatal("a push succeeded on a read-only registry")
	}

	before := e.snapshot()

	// The default grace period keeps everything pushed within the hour.
	res := e.prune(nil, "-prune=check")
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "Would delete 0 blobs\n") {
		t.Fatalf("check within the grace period: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}

	// The dry run, at the default log level: the summary only.
	res = e.prune(nil, "-prune=check", noGrace)
	if res.ExitCode != 0 {
		t.Fatalf("check: exit %d\n%s", res.ExitCode, res.Stderr)
	}
	wantCheck := fmt.Sprintf(
		"Would delete %d blobs\nWould free up %s of disk space\nUse -prune=delete to actually delete the data\n"+
			"Would delete 1 repositories\nWould delete 2 manifest links\nWould delete 1 tags\nWould delete 1 tag index entries\n"+
			"Would delete 5 layer links\nWould delete 0 uploads (0 B)\n",
		len(gone),
		prune.FormatSize(wantBytes),
	)
	if res.Stdout != wantCheck {
		t.Errorf("check output:\n%s\nwant:\n%s", res.Stdout, wantCheck)
	}
	if strings.Contains(res.Stderr, "Would delete blob:") {
		t.Errorf("candidates logged at the default level:\n%s", res.Stderr)
	}

	// With REGISTRY_LOG_LEVEL=info, each candidate, and exactly those.
	res = e.prune([]string{"REGISTRY_LOG_LEVEL=info"}, "-prune=check", noGrace)
	if res.ExitCode != 0 || res.Stdout != wantCheck {
		t.Fatalf("check at info: exit %d\n%s", res.ExitCode, res.Stdout)
	}
	var logged []string
	for _, m := range regexp.MustCompile(`Would delete blob: (sha256:[0-9a-f]{64})`).FindAllStringSubmatch(res.Stderr, -1) {
		logged = append(logged, m[1])
	}
	sort.Strings(logged)
	if !reflect.DeepEqual(logged, hashesToStrings(gone)) {
		t.Errorf("logged candidates:\n%v\nwant:\n%v", logged, hashesToStrings(gone))
	}
	if !strings.Contains(res.Stderr, "Would delete repository: ns/doomed") {
		t.Errorf("the dropped repository is not logged:\n%s", res.Stderr)
	}
	if after := e.snapshot(); after != before {
		t.Fatal("the dry run changed storage")
	}

	// The real run.
	res = e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 0 {
		t.Fatalf("delete: exit %d\n%s", res.ExitCode, res.Stderr)
	}
	wantDelete := fmt.Sprintf("Deleted %d blobs\nFreed up %s of disk space\n"+
		"Deleted 1 repositories\nDeleted 2 manifest links\nDeleted 1 tags\nDeleted 1 tag index entries\n"+
		"Deleted 5 layer links\nDeleted 0 uploads (0 B)\n", len(gone), prune.FormatSize(wantBytes))
	if res.Stdout != wantDelete {
		t.Errorf("delete output:\n%s\nwant:\n%s", res.Stdout, wantDelete)
	}
	for _, h := range gone {
		if e.blobExists(h) {
			t.Errorf("blob %s survived the prune", h)
		}
	}
	// Everything still referenced is stored and pulls byte-identical, through a registry that
	// starts fresh (no cache of the old state).
	e.startRegistry(`REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`)
	for _, img := range []v1.Image{a3, b, amd, arm} {
		for _, h := range blobsOf(t, img) {
			if !e.blobExists(h) {
				t.Errorf("referenced blob %s was deleted", h)
			}
		}
	}
	for ref, img := range map[string]v1.Image{"ns/app:latest": a3, "ns/other:latest": b} {
		if err := e.pullsIdentical(ref, img); err != nil {
			t.Error(err)
		}
	}
	for _, child := range []v1.Image{amd, arm} {
		cd, _ := child.Digest()
		if err := e.pullsIdentical("ns/multi@"+cd.String(), child); err != nil {
			t.Error(err)
		}
	}
	gotIdx, err := remote.Index(e.ref("ns/multi:latest"))
	if err != nil {
		t.Fatalf("pulling the index: %v", err)
	}
	if gd, _ := gotIdx.Digest(); gd != idxd {
		t.Errorf("index digest %s, want %s", gd, idxd)
	}
	if _, err := remote.Image(e.ref("ns/app@" + a1d.String())); err == nil {
		t.Error("the pruned image a1 still pulls")
	}

	// A second run finds nothing more.
	res = e.prune(nil, "-prune=check", noGrace)
	if !strings.HasPrefix(res.Stdout, "Would delete 0 blobs\nWould free up 0 B of disk space\n") {
		t.Errorf("second check:\n%s", res.Stdout)
	}

	// Back to read-write: pushes work again.
	e.startRegistry()
	again := image(t, "after", "base", "after-only")
	e.mustPush("ns/app:after", again)
	if err := e.pullsIdentical("ns/app:after", again); err != nil {
		t.Error(err)
	}
}

func tagHistory(is *imagev1.ImageStream, tag string) []string {
	for _, t := range is.Status.Tags {
		if t.Tag == tag {
			var out []string
			for _, item := range t.Items {
				out = append(out, item.Image)
			}
			return out
		}
	}
	return nil
}

func trimHistory(tags []imagev1.NamedTagEventList, tag, drop string) []imagev1.NamedTagEventList {
	for i := range tags {
		if tags[i].Tag != tag {
			continue
		}
		var kept []imagev1.TagEvent
		for _, item := range tags[i].Items {
			if item.Image != drop {
				kept = append(kept, item)
			}
		}
		tags[i].Items = kept
	}
	return tags
}

func mustDeleteImage(t *testing.T, e *env, d v1.Hash) {
	t.Helper()
	if err := e.images.Images().Delete(context.Background(), d.String(), metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting Image %s: %v", d, err)
	}
}
