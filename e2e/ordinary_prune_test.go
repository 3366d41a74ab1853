package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	imagev1 "github.com/openshift/api/image/v1"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// prunerToken stands for the token `oc adm prune images` sends as the Basic password (oc whoami
// -t of a user bound to system:image-pruner). Nothing checks it until the registry
// authenticates; the calls carry it as oc does, so that they keep passing when it does.
const prunerToken = "sha256~ordinary-pruner-token"

// answer is a registry's reply to one call: the status and, for errors, the first error code.
type answer struct {
	Status int
	Code   string
}

func (a answer) String() string {
	if a.Code == "" {
		return fmt.Sprint(a.Status)
	}
	return fmt.Sprintf("%d %s", a.Status, a.Code)
}

// call sends one request as oc's registry client does: Basic auth, the token as password.
func (e *env) call(method, path string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.reg.Host+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	token := prunerToken
	if e.callToken != "" {
		token = e.callToken
	}
	req.SetBasicAuth("unused", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	a := answer{Status: resp.StatusCode}
	if resp.StatusCode >= 400 {
		var errs struct {
			Errors []struct{ Code string } `json:"errors"`
		}
		if err := json.Unmarshal(body, &errs); err != nil || len(errs.Errors) == 0 {
			e.t.Errorf("%s %s: %d with a body not in the registry's error format: %q", method, path, a.Status, body)
		} else {
			a.Code = errs.Errors[0].Code
		}
	}
	return a
}

// deleteAll sends DELETE to each path and checks that every answer is want.
func (e *env) deleteAll(what string, want answer, paths ...string) {
	e.t.Helper()
	for _, p := range paths {
		if got := e.call(http.MethodDelete, p); got != want {
			e.t.Errorf("%s: DELETE %s answered %s, want %s", what, p, got, want)
		}
	}
}

func layerLinkPath(repo string, d v1.Hash) string { return "/v2/" + repo + "/blobs/" + d.String() }

func manifestLinkPath(repo string, d v1.Hash) string {
	return "/v2/" + repo + "/manifests/" + d.String()
}

func adminBlobPath(d v1.Hash) string { return "/admin/blobs/" + d.String() }

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOrdinaryPruneCalls replays against the registry the calls `oc adm prune images --confirm`
// makes, in its order, for a prune that drops an old revision of a tag (ns/app's a2), an old
// revision holding a multi-arch index (ns/multi's idx1, whose two children's Images go with it:
// no stream names them), and the only image of a stream (ns/gone's g):
//
//  1. per stream, the layer links of what the pruned images used and no image the stream keeps
//     uses: DELETE /v2/<repo>/blobs/<digest>, 202 each;
//  2. the streams' status updates, through the image API (the history items go, and a tag
//     left empty);
//  3. per stream, the pruned manifests' links: DELETE /v2/<repo>/manifests/<digest>, 202 each;
//  4. per pruned Image, its blobs no remaining Image uses: DELETE /admin/blobs/<digest>, 204
//     each; then the Image objects.
//
// Before step 2 a manifest delete is refused (405) and changes nothing. After the sequence the
// images kept pull byte-identical, and a hard prune's check finds exactly what the sequence is
// known to leave: oc computes links from the streams' histories, which name the index but not
// its children, so the children's manifest links and the links of their own config and layers
// stay in ns/multi (their blobs gone). No tag is left naming a pruned manifest (the manifest
// deletes untag, and drop the manifests from the tags' indexes), and ns/gone keeps only empty
// directories, which are no registry data. A hard prune then removes the children's links.
func TestOrdinaryPruneCalls(t *testing.T) {
	ordinaryPruneCalls(t, newEnv(t))
}

// TestOrdinaryPruneCallsAuthenticated is the same sequence under auth: openshift, on a cluster:
// images pushed with a pusher's token, the calls made with a token of system:image-pruner's
// (the registry's service account holds it too, for the hard prune run in its pod).
func TestOrdinaryPruneCallsAuthenticated(t *testing.T) {
	w := newAuthWorld(t)
	registry := harness.KubeServiceAccount("openshift-image-registry", "registry")
	if err := w.cluster.BindImagePruner(context.Background(), registry); err != nil {
		t.Fatal(err)
	}
	w.auth = w.basic(pusher)
	w.callToken = w.tokens[pruner]
	ordinaryPruneCalls(t, w.env)
}

func ordinaryPruneCalls(t *testing.T, e *env) {
	ctx := context.Background()
	e.startRegistry()

	a1 := image(t, "a1", "base", "a1-only")
	a2 := image(t, "a2", "base", "a2-only")
	a3 := image(t, "a3", "base", "a3-only")
	b := image(t, "b", "base", "b-only")
	g := image(t, "g", "base", "g-only")
	e.mustPush("ns/app:v1", a1)
	e.mustPush("ns/app:latest", a2)
	e.mustPush("ns/app:latest", a3) // latest's history: a3, a2
	e.mustPush("ns/other:latest", b)
	e.mustPush("ns/gone:latest", g)
	amd1, arm1 := image(t, "amd1", "base", "amd1-only"), image(t, "arm1", "base-arm", "arm1-only")
	amd2, arm2 := image(t, "amd2", "base", "amd2-only"), image(t, "arm2", "base-arm", "arm2-only")
	idx1, idx2 := harness.PlatformIndex(amd1, arm1), harness.PlatformIndex(amd2, arm2)
	for _, idx := range []v1.ImageIndex{idx1, idx2} { // latest's history: idx2, idx1
		if err := remote.WriteIndex(e.ref("ns/multi:latest"), idx, e.remoteAuth()); err != nil {
			t.Fatalf("pushing an index: %v", err)
		}
	}
	a2d, gd := digestOf(t, a2), digestOf(t, g)
	idx1d, idx2d := digestOf(t, idx1), digestOf(t, idx2)
	amd1d, arm1d := digestOf(t, amd1), digestOf(t, arm1)
	blobs := func(img v1.Image) (manifest, config v1.Hash, own v1.Hash, base v1.Hash) {
		bl := blobsOf(t, img)
		return bl[0], bl[1], bl[3], bl[2]
	}
	_, a2Config, a2Own, base := blobs(a2)
	_, gConfig, gOwn, _ := blobs(g)
	_, amd1Config, amd1Own, _ := blobs(amd1)
	_, arm1Config, arm1Own, _ := blobs(arm1)

	// 1. Layer links. ns/app keeps a1 and a3, which use base; ns/gone keeps nothing; idx1 has
	// no layers, and oc never looks at its children's.
	e.deleteAll("layer links", answer{Status: http.StatusAccepted},
		layerLinkPath("ns/app", a2Config), layerLinkPath("ns/app", a2Own),
		layerLinkPath("ns/gone", gConfig), layerLinkPath("ns/gone", gOwn), layerLinkPath("ns/gone", base))
	// oc treats 404 as done: a second run after an interrupted one gets it.
	e.deleteAll("a layer link again", answer{Status: http.StatusNotFound, Code: "BLOB_UNKNOWN"},
		layerLinkPath("ns/app", a2Own))

	// While the history still names a2, its link stays.
	before := e.snapshot()
	e.deleteAll("a manifest the history names", answer{Status: http.StatusMethodNotAllowed, Code: "UNSUPPORTED"},
		manifestLinkPath("ns/app", a2d))
	if e.snapshot() != before {
		t.Fatal("a refused manifest delete changed storage")
	}

	// 2. The streams' status updates.
	for stream, drop := range map[string]string{"app": a2d.String(), "multi": idx1d.String(), "gone": gd.String()} {
		is, err := e.images.ImageStreams("ns").Get(ctx, stream, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		is.Status.Tags = trimHistory(is.Status.Tags, "latest", drop)
		// oc drops a tag whose history it emptied.
		is.Status.Tags = slices.DeleteFunc(is.Status.Tags, func(t imagev1.NamedTagEventList) bool {
			return len(t.Items) == 0
		})
		if _, err := e.images.ImageStreams("ns").UpdateStatus(ctx, is, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// 3. Manifest links.
	e.deleteAll("manifest links", answer{Status: http.StatusAccepted},
		manifestLinkPath("ns/app", a2d), manifestLinkPath("ns/multi", idx1d), manifestLinkPath("ns/gone", gd))

	// 4. Blobs of the pruned Images that no other Image uses (base and base-arm stay), then
	// the Images.
	var gone []v1.Hash
	for _, img := range []v1.Image{a2, g, amd1, arm1} {
		m, c, own, _ := blobs(img)
		gone = append(gone, m, c, own)
	}
	gone = append(gone, idx1d)
	for _, h := range gone {
		e.deleteAll("blobs", answer{Status: http.StatusNoContent}, adminBlobPath(h))
	}
	e.deleteAll("a blob again", answer{Status: http.StatusNoContent}, adminBlobPath(a2Own))
	for _, h := range []v1.Hash{a2d, idx1d, gd, amd1d, arm1d} {
		mustDeleteImage(t, e, h)
	}

	for _, h := range gone {
		if e.blobExists(h) {
			t.Errorf("blob %s survived its delete", h)
		}
	}
	// What stays pulls, byte for byte, through a registry that starts afresh.
	e.startRegistry()
	for ref, img := range map[string]v1.Image{
		"ns/app:v1": a1, "ns/app:latest": a3, "ns/other:latest": b,
		"ns/multi@" + digestOf(t, amd2).String(): amd2, "ns/multi@" + digestOf(t, arm2).String(): arm2,
	} {
		if err := e.pullsIdentical(ref, img); err != nil {
			t.Error(err)
		}
	}
	if idx, err := remote.Index(e.ref("ns/multi:latest"), e.remoteAuth()); err != nil || digestOf(t, idx) != idx2d {
		t.Errorf("ns/multi:latest is not idx2 (%v)", err)
	}
	for _, ref := range []string{"ns/app@" + a2d.String(), "ns/gone:latest", "ns/gone@" + gd.String()} {
		if _, err := remote.Image(e.ref(ref), e.remoteAuth()); err == nil {
			t.Errorf("the pruned %s still pulls", ref)
		}
	}
	if _, err := remote.Index(e.ref("ns/multi@"+idx1d.String()), e.remoteAuth()); err == nil {
		t.Error("the pruned index still pulls")
	}

	// What the sequence leaves: the children's links in ns/multi, exactly.
	res := e.prune([]string{"REGISTRY_LOG_LEVEL=info"}, "-prune=check", noGrace)
	const wantCheck = "Would delete 0 blobs\nWould free up 0 B of disk space\n" +
		"Use -prune=delete to actually delete the data\nWould delete 0 repositories\n" +
		"Would delete 2 manifest links\nWould delete 0 tags\nWould delete 0 tag index entries\n" +
		"Would delete 4 layer links\nWould delete 0 uploads (0 B)\n"
	if res.ExitCode != 0 || res.Stdout != wantCheck {
		t.Errorf("check after the ordinary prune: exit %d\n%s\nwant:\n%s\n%s",
			res.ExitCode, res.Stdout, wantCheck, res.Stderr)
	}
	var candidates []string
	for _, m := range regexp.MustCompile(`Would delete ([a-z ]+): ([^"\s]+)`).FindAllStringSubmatch(res.Stderr, -1) {
		candidates = append(candidates, m[1]+" "+m[2])
	}
	slices.Sort(candidates)
	want := []string{
		"layer link ns/multi@" + amd1Config.String(), "layer link ns/multi@" + amd1Own.String(),
		"layer link ns/multi@" + arm1Config.String(), "layer link ns/multi@" + arm1Own.String(),
		"manifest link ns/multi@" + amd1d.String(), "manifest link ns/multi@" + arm1d.String(),
	}
	slices.Sort(want)
	if !reflect.DeepEqual(candidates, want) {
		t.Errorf("the check's candidates:\n%s\nwant:\n%s", strings.Join(candidates, "\n"), strings.Join(want, "\n"))
	}
	// ns/gone holds directories and no file: nothing a registry or a prune reads.
	goneDir := filepath.Join(e.storageDir, "docker/registry/v2/repositories/ns/gone")
	var files []string
	if err := filepath.Walk(goneDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return err
	}); err != nil || len(files) != 0 {
		t.Errorf("ns/gone: files %v (%v), want empty directories", files, err)
	}

	// The hard prune finishes the job.
	e.startRegistry(harness.ReadOnlyEnv)
	res = e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Deleted 2 manifest links\n") ||
		!strings.Contains(res.Stdout, "Deleted 4 layer links\n") {
		t.Errorf("delete: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if res := e.prune(nil, "-prune=check", noGrace); !strings.Contains(res.Stdout, "Would delete 0 manifest links\n") ||
		!strings.Contains(res.Stdout, "Would delete 0 layer links\n") {
		t.Errorf("check after the hard prune:\n%s", res.Stdout)
	}
	for ref, img := range map[string]v1.Image{"ns/app:latest": a3, "ns/multi@" + digestOf(t, amd2).String(): amd2} {
		if err := e.pullsIdentical(ref, img); err != nil {
			t.Error(err)
		}
	}
}

// TestOrdinaryPruneCallsRefused: a read-only registry refuses every call, the admin one
// included, and storage is unchanged; with storage.delete.enabled off the link deletes are
// refused and the admin one is not (as upstream); bad input is a 400 in the registry's format,
// and a repository storage does not hold a 404.
func TestOrdinaryPruneCallsRefused(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	img := image(t, "refused", "refused-base", "refused-own")
	d := e.mustPush("ns/app:latest", img)
	bl := blobsOf(t, img)
	config, own := bl[1], bl[3]
	// A manifest no history names, so that only the mode refuses its delete.
	extra := image(t, "extra", "refused-base")
	extrad := e.mustPush("ns/app@"+digestOf(t, extra).String(), extra)
	calls := []string{layerLinkPath("ns/app", config), manifestLinkPath("ns/app", extrad), adminBlobPath(own)}

	before := e.snapshot()
	e.startRegistry(harness.ReadOnlyEnv)
	e.deleteAll("read-only", answer{Status: http.StatusMethodNotAllowed, Code: "UNSUPPORTED"}, calls...)
	if e.snapshot() != before {
		t.Error("a read-only registry changed storage")
	}

	e.startRegistry("REGISTRY_STORAGE_DELETE_ENABLED=false")
	e.deleteAll("deletes disabled", answer{Status: http.StatusMethodNotAllowed, Code: "UNSUPPORTED"}, calls[:2]...)
	if e.snapshot() != before {
		t.Error("a registry with deletes disabled changed storage")
	}
	e.deleteAll("the admin call with deletes disabled", answer{Status: http.StatusNoContent}, calls[2])
	if e.blobExists(own) {
		t.Error("the admin call left the blob")
	}
	// Still distribution's: a tag delete, which deletes are disabled for.
	if got := e.call(http.MethodDelete, "/v2/ns/app/manifests/latest"); got != (answer{405, "UNSUPPORTED"}) {
		t.Errorf("a tag delete with deletes disabled: %s", got)
	}

	e.startRegistry()

	for path, want := range map[string]answer{
		"/v2/ns/app/blobs/sha256:zz":              {http.StatusBadRequest, "DIGEST_INVALID"},
		"/v2/ns/app/manifests/sha256:abc":         {http.StatusBadRequest, "DIGEST_INVALID"},
		"/v2/NS/App/blobs/" + own.String():        {http.StatusBadRequest, "NAME_INVALID"},
		"/admin/blobs/not-a-digest":               {http.StatusBadRequest, "DIGEST_INVALID"},
		"/v2/ns/unknown/manifests/" + d.String():  {http.StatusNotFound, "MANIFEST_UNKNOWN"},
		"/v2/ns/unknown/blobs/" + config.String(): {http.StatusNotFound, "BLOB_UNKNOWN"},
	} {
		e.deleteAll("bad input", want, path)
	}
	if got := e.call(http.MethodGet, adminBlobPath(own)); got != (answer{http.StatusMethodNotAllowed, "UNSUPPORTED"}) {
		t.Errorf("GET on the admin route: %s", got)
	}
}

// TestOrdinaryPruneCallsInvalidateCaches: what the calls delete, no blob descriptor cache
// describes afterwards. With Redis, at once for every replica; in memory, at once in the
// replica that served the calls and within seconds in the others (the prune marker, as after a
// hard prune). Without that, a client pushing the image again would be told its layers are
// there, skip them, and leave an image that does not pull.
func TestOrdinaryPruneCallsInvalidateCaches(t *testing.T) {
	t.Run("inmemory", func(t *testing.T) {
		e := newEnv(t)
		setup := inMemoryCacheSetup(e)
		e.startRegistryWith(setup)
		replica := e.startReplica(setup)
		testCallsInvalidate(t, e, replica, nil)
	})
	t.Run("redis", func(t *testing.T) {
		e := newEnv(t)
		rs := harness.StartRedisT(t)
		setup := redisCacheSetup(e, rs)
		e.startRegistryWith(setup)
		replica := e.startReplica(setup)
		rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
		defer rc.Close()
		testCallsInvalidate(t, e, replica, rc)
	})
}

func testCallsInvalidate(t *testing.T, e *env, replica *harness.Registry, rc *redis.Client) {
	ctx := context.Background()
	img := image(t, "cached", "cached-layer-one", "cached-layer-two")
	d := e.mustPush("ns/cached:v1", img)
	e.mustPush("ns/keep:v1", image(t, "kept", "kept-layer"))
	onReplica := *e
	onReplica.reg = replica
	for _, r := range []*env{e, &onReplica} {
		if err := r.pullsIdentical("ns/cached:v1", img); err != nil {
			t.Fatal(err)
		}
	}
	blobs := blobsOf(t, img) // manifest, config, layers

	// The ordinary prune drops the image: its links, the history, the manifest link, the blobs.
	e.deleteAll("layer links", answer{Status: http.StatusAccepted},
		layerLinkPath("ns/cached", blobs[1]), layerLinkPath("ns/cached", blobs[2]),
		layerLinkPath("ns/cached", blobs[3]))
	softDeleteHistory(t, e, "ns", "cached", "v1", d)
	e.deleteAll("manifest link", answer{Status: http.StatusAccepted}, manifestLinkPath("ns/cached", d))
	for _, h := range blobs {
		e.deleteAll("blobs", answer{Status: http.StatusNoContent}, adminBlobPath(h))
	}
	mustDeleteImage(t, e, d)
	deleted := time.Now()

	for _, h := range blobs {
		if code := headBlob(t, e.reg.Host, "ns/cached", h); code != http.StatusNotFound {
			t.Errorf("HEAD of deleted blob %s on the replica that deleted it: %d, want 404", h, code)
		}
	}
	if rc != nil {
		for _, h := range blobs {
			if keys, err := rc.Keys(ctx, "*"+h.Hex+"*").Result(); err != nil || len(keys) != 0 {
				t.Errorf("Redis keys of deleted %s left: %v (%v)", h, keys, err)
			}
		}
	}
	for {
		var claimed []string
		for _, h := range blobs {
			if code := headBlob(t, replica.Host, "ns/cached", h); code != http.StatusNotFound {
				claimed = append(claimed, fmt.Sprintf("%s: %d", h, code))
			}
		}
		if len(claimed) == 0 {
			t.Logf("the other replica stopped claiming the deleted blobs %s after the calls",
				time.Since(deleted).Round(100*time.Millisecond))
			break
		}
		if rc != nil || time.Since(deleted) > 10*time.Second {
			t.Fatalf("the other replica still claims deleted blobs:\n%s", strings.Join(claimed, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The same image again: its layers are uploaded, and it pulls from both replicas.
	e.mustPush("ns/cached:v1", img)
	for _, l := range blobs[2:] {
		heads := headsAnswered(t, e.reg, "ns/cached", l)
		if len(heads) == 0 || heads[len(heads)-1] != "404" {
			t.Errorf("the push's HEAD on layer %s was answered %v, want 404", l, heads)
		}
	}
	for _, r := range []*env{e, &onReplica} {
		if err := r.pullsIdentical("ns/cached:v1", img); err != nil {
			t.Errorf("after pushing again: %v", err)
		}
	}
}

// softDeleteHistory is the ordinary prune's stream update: the tag's history forgets d.
func softDeleteHistory(t *testing.T, e *env, namespace, stream, tag string, d v1.Hash) {
	t.Helper()
	ctx := context.Background()
	is, err := e.images.ImageStreams(namespace).Get(ctx, stream, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	is.Status.Tags = trimHistory(is.Status.Tags, tag, d.String())
	if _, err := e.images.ImageStreams(namespace).UpdateStatus(ctx, is, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
