package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// TestGenerateOrdinary checks the generated cluster against its size and its own expectation:
// every history item names an Image, each Image is in at most one item, the expected deletions
// add up, and every pod reference parses and, by digest, names an Image of its stream.
func TestGenerateOrdinary(t *testing.T) {
	size := OrdinarySizes["small"]
	ds := GenerateOrdinary(size)
	if len(ds.images) != size.Images || len(ds.streams) != size.Streams || len(ds.pods) != size.Pods ||
		len(ds.namespaces) != size.Namespaces || len(ds.others) != size.Others*ds.OtherKinds {
		t.Fatalf("generated %d Images, %d streams, %d pods, %d namespaces, %d others; want the size %+v",
			len(ds.images), len(ds.streams), len(ds.pods), len(ds.namespaces), len(ds.others), size)
	}
	inItem := map[int]bool{}
	old := 0
	for _, st := range ds.streams {
		for _, tag := range st.tags {
			for rev, im := range tag.items {
				if inItem[im] {
					t.Fatalf("Image %d is in two items", im)
				}
				inItem[im] = true
				if rev >= ordinaryKeepTagRevisions {
					old++
				}
			}
		}
	}
	if len(inItem) != ds.Items || ds.Items+ds.Orphans != size.Images {
		t.Errorf("%d Images in items, %d items, %d orphans, for %d Images", len(inItem), ds.Items, ds.Orphans, size.Images)
	}
	e := ds.Expect
	if e.DeletedImages != ds.Orphans+e.DeletedItems || e.DeletedItems+e.KeptByDigest != old || e.KeptByDigest == 0 ||
		e.DeletedItems == 0 || e.UpdatedStreams == 0 || e.UpdatedStreams > size.Streams {
		t.Errorf("expectation %+v with %d orphans and %d old revisions", e, ds.Orphans, old)
	}
	if ds.PodPhases[corev1.PodRunning] <= size.Pods/2 || ds.PodPhases[corev1.PodSucceeded] == 0 ||
		ds.PodPhases[corev1.PodFailed] == 0 || ds.PodPhases[corev1.PodPending] == 0 {
		t.Errorf("pod phases %v: want most Running, some of each other", ds.PodPhases)
	}
	if ds.ByTag == 0 || ds.ByDigest == 0 || ds.External == 0 {
		t.Errorf("references: %d by tag, %d by digest, %d external; want some of each", ds.ByTag, ds.ByDigest, ds.External)
	}
	manifests := map[string]bool{}
	for _, im := range ds.images {
		manifests[im.manifest.String()] = true
	}
	for _, p := range ds.pods {
		for _, ref := range append(append([]string(nil), p.containers...), p.inits...) {
			named, err := reference.ParseNormalizedNamed(ref)
			if err != nil {
				t.Fatalf("pod %s/%s: %q does not parse: %v", p.ns, p.name, ref, err)
			}
			if c, ok := named.(reference.Canonical); ok {
				if !manifests[c.Digest().String()] || !strings.Contains(ref, "/"+p.ns+"/") {
					t.Errorf("pod %s/%s names %q: no Image of its namespace's streams", p.ns, p.name, ref)
				}
			}
		}
	}
	if again := GenerateOrdinary(size); !reflect.DeepEqual(again, ds) {
		t.Error("two generations of the same size differ")
	}
}

func TestClassifyKube(t *testing.T) {
	for _, c := range []struct{ method, target, want string }{
		{http.MethodGet, "/api/v1/pods?limit=500", "list pods"},
		{http.MethodGet, "/api/v1/namespaces/a/pods", "list pods"},
		{http.MethodGet, "/api/v1/namespaces/a/pods/p", "get pods"},
		{http.MethodPut, "/api/v1/namespaces/a/pods/p/status", "update pods/status"},
		{http.MethodGet, "/apis/image.openshift.io/v1/images?limit=500&continue=x", "list images"},
		{http.MethodDelete, "/apis/image.openshift.io/v1/images/sha256:ab", "delete images"},
		{http.MethodGet, "/apis/image.openshift.io/v1/namespaces/a/imagestreams/s", "get imagestreams"},
		{http.MethodPut, "/apis/image.openshift.io/v1/namespaces/a/imagestreams/s/status", "update imagestreams/status"},
		{http.MethodGet, "/apis/apps.openshift.io/v1/deploymentconfigs", "list deploymentconfigs"},
		{http.MethodGet, "/api/v1/pods?watch=true", "watch pods"},
		{http.MethodPost, "/api/v1/namespaces", "create namespaces"},
		{http.MethodGet, "/apis/image.openshift.io/v1", "discovery"},
		{http.MethodGet, "/api", "discovery"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := ClassifyKube(r); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.method, c.target, got, c.want)
		}
	}
}

func TestParseOrdinarySummary(t *testing.T) {
	out := "Deleting 2 items from image stream a/b\nSummary: deleted 3 image object(s), deleted 2 image stream tag item(s), " +
		"updated 1 image stream(s), deleted 4 layer link(s)\n"
	summary, err := parseOrdinarySummary(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := OrdinaryExpect{DeletedImages: 3, DeletedItems: 2, UpdatedStreams: 1}
	if got := summaryCounts(summary); got != want {
		t.Errorf("counts of %q: %+v, want %+v", summary, got, want)
	}
	if got := summaryCounts("deleted 0 objects"); got != (OrdinaryExpect{}) {
		t.Errorf("counts of nothing deleted: %+v", got)
	}
	if _, err := parseOrdinarySummary(strings.NewReader("error: forbidden\n")); err == nil {
		t.Error("no summary line, no error")
	}
}

// TestOrdinaryMarkdown checks the report's judgements on a made-up result: the goal judged at
// full size only, requests and pages against what the data set needs, the summary against
// the expectation.
func TestOrdinaryMarkdown(t *testing.T) {
	ds := GenerateOrdinary(OrdinarySizes["tiny"])
	res := &OrdinaryResult{Dataset: ds, Config: OrdinaryConfig{Size: ds.Size, Workers: 8}, Load: time.Second, Loaded: 10}
	dry := OrdinaryRun{What: "dry run", Args: ordinaryFlags, Wall: time.Second, PeakRSS: 300 << 20}
	dry.API = res.expectedRequests(dry)
	dry.Got = OrdinaryExpect{
		DeletedImages: ds.Expect.DeletedImages, DeletedItems: ds.Expect.DeletedItems, UpdatedStreams: ds.Expect.UpdatedStreams,
	}
	confirm := dry
	confirm.What, confirm.Args = "confirmed", append(append([]string(nil), ordinaryFlags...), "--confirm")
	confirm.API = res.expectedRequests(confirm)
	confirm.API["list pods"]++ // a page too many
	confirm.Got.DeletedImages--
	res.Runs = []OrdinaryRun{dry, confirm}
	var b strings.Builder
	res.WriteMarkdown(&b)
	out := b.String()
	t.Log("\n" + out)
	if confirm.API["delete images"] != ds.Expect.DeletedImages || dry.API["delete images"] != 0 {
		t.Errorf("expected deletes: confirmed %d, dry %d; want %d and 0",
			confirm.API["delete images"], dry.API["delete images"], ds.Expect.DeletedImages)
	}
	for _, want := range []string{
		"| dry run | peak RSS | 300.0 MiB | ≤ 256.0 MiB at full size (size tiny: not judged) |  |",
		"| dry run | API requests |",
		"| confirmed | list pages | ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the report", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		judged := strings.HasSuffix(line, "| met |") || strings.HasSuffix(line, "| **no** |")
		wantNo := strings.HasPrefix(line, "| confirmed |") &&
			(strings.Contains(line, "| API requests |") || strings.Contains(line, "| list pages |") ||
				strings.Contains(line, "| Images, tag items"))
		if judged && wantNo != strings.HasSuffix(line, "| **no** |") {
			t.Errorf("judged wrongly: %s", line)
		}
	}
}

// TestCountingProxyTLS: a client trusting the returned certificate reaches the upstream
// through the proxy, which counts the request.
func TestCountingProxyTLS(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Authorization"))
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	p, certPEM, err := StartCountingProxyTLS(u, nil, ClassifyKube)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !strings.HasPrefix(p.URL, "https://127.0.0.1:") {
		t.Fatalf("proxy URL %s", p.URL)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("the proxy's certificate does not parse")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/pods", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "Bearer t" {
		t.Errorf("upstream saw Authorization %q", body)
	}
	if got := p.Counts(); got["list pods"] != 1 || got.Total() != 1 {
		t.Errorf("counts %v", got)
	}
}

// TestOrdinarySmoke runs the ordinary prune's benchmark at the tiny size: cluster, load, a
// dry run and a confirmed one, each deciding what the data set says, in the requests it needs.
// Skipped when the binaries are missing, failing instead with E2E_REQUIRED=1.
func TestOrdinarySmoke(t *testing.T) {
	requireBinaries(t, "the ordinary prune's benchmark", harness.DockerRegistryBinary, harness.ImageAPIServerBinary,
		harness.EtcdBinary, harness.KubeAPIServerBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := RunOrdinary(ctx, OrdinaryConfig{
		Size: OrdinarySizes["tiny"], WorkDir: t.TempDir(), Workers: 8, Profile: true, Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.WriteMarkdown(&b)
	out := b.String()
	t.Log("\n" + out)
	if len(res.Runs) != 2 || res.Loaded != res.Dataset.Objects() || len(res.Profiles) != 2 {
		t.Fatalf("%d runs, %d of %d objects loaded, profiles %v", len(res.Runs), res.Loaded, res.Dataset.Objects(),
			res.Profiles)
	}
	if strings.Contains(out, "**no**") {
		t.Error("a judgement failed")
	}
	for i, run := range res.Runs {
		// The dry run decides on the listing; the confirmed run reads each stream afresh.
		wantGets := 0
		if i == 1 {
			wantGets = len(res.Dataset.streams)
		}
		if run.PeakRSS <= 0 || run.Wall <= 0 || run.API["list pods"] != 1 || run.API["get imagestreams"] != wantGets {
			t.Errorf("%s: %+v", run.What, run)
		}
	}
	if confirmed := res.Runs[1]; confirmed.API["delete images"] != res.Dataset.Expect.DeletedImages {
		t.Errorf("confirmed run deleted %d Images, want %d", confirmed.API["delete images"], res.Dataset.Expect.DeletedImages)
	}
}
