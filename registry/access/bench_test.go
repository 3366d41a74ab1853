package access

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"
)

// BenchmarkPull measures pulls (the manifest by tag, then its layer) through distribution's
// app on filesystem storage, without an access controller and with the openshift one, over the
// same storage. Each iteration pulls once from each, in turn, so that the load of a shared
// machine weighs on both alike; the decisions are cached after the first pull, as they are for
// a client pulling many layers: this is the controller's cost on a warm cache.
//
//	go test -run '^$' -bench Pull -benchtime 2000x -count 3 ./registry/access
//
// It reports the time of a pull without auth (ns/pull-none) and with it (ns/pull-openshift),
// and their ratio, the throughput with auth against without (throughput-ratio, 1 = no cost).
func BenchmarkPull(b *testing.B) {
	root := b.TempDir()
	for _, layerSize := range []int{1 << 10, 1 << 20} {
		repo := fmt.Sprintf("ns/app%d", layerSize)
		seedImage(b, benchServer(b, root, "none"), repo, layerSize)
		b.Run(fmt.Sprintf("layer=%dKiB", layerSize>>10), func(b *testing.B) {
			none, openshift := benchServer(b, root, "none"), benchServer(b, root, "openshift")
			layer := layerOf(b, none, repo)
			pull := func(srv *httptest.Server) time.Duration {
				start := time.Now()
				benchGet(b, srv, "/v2/"+repo+"/manifests/v1")
				benchGet(b, srv, "/v2/"+repo+"/blobs/"+layer)
				return time.Since(start)
			}
			pull(openshift) // the first pull fills the decision cache
			var withoutAuth, withAuth time.Duration
			b.SetBytes(2 * int64(layerSize))
			b.ResetTimer()
			for i := range b.N {
				// Alternate which goes first, so neither always gets the warmer caches.
				if i%2 == 0 {
					withoutAuth += pull(none)
					withAuth += pull(openshift)
				} else {
					withAuth += pull(openshift)
					withoutAuth += pull(none)
				}
			}
			b.ReportMetric(float64(withoutAuth.Nanoseconds())/float64(b.N), "ns/pull-none")
			b.ReportMetric(float64(withAuth.Nanoseconds())/float64(b.N), "ns/pull-openshift")
			b.ReportMetric(float64(withoutAuth)/float64(withAuth), "throughput-ratio")
		})
	}
}

// benchServer serves distribution's app over root, with the openshift access controller
// behind its Handler when auth is "openshift" (the fake cluster's puller then pulls).
func benchServer(b *testing.B, root, auth string) *httptest.Server {
	b.Helper()
	yaml := fmt.Sprintf(`version: 0.1
log:
  level: error
http:
  secret: bench
storage:
  filesystem:
    rootdirectory: %s
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
`, root)
	if auth == "openshift" {
		yaml += "auth:\n  openshift: {}\n"
	}
	dcfg, err := configuration.Parse(strings.NewReader(yaml))
	if err != nil {
		b.Fatal(err)
	}
	var handler http.Handler
	if auth == "openshift" {
		ctl := New(&fakeCluster{}, Options{})
		Setup(ctl, false)
		b.Cleanup(func() { installed.Store(nil) })
		handler = ctl.Handler(handlers.NewApp(context.Background(), dcfg))
	} else {
		handler = handlers.NewApp(context.Background(), dcfg)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth == "openshift" {
			r.Header.Set("Authorization", bearer("puller"))
		}
		handler.ServeHTTP(w, r)
	}))
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 16
	b.Cleanup(srv.Close)
	return srv
}

func benchGet(b *testing.B, srv *httptest.Server, path string) {
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("GET %s: %d", path, resp.StatusCode)
	}
}

// seedImage stores a schema 2 image of one layer of size bytes under repo:v1.
func seedImage(b *testing.B, srv *httptest.Server, repo string, size int) {
	b.Helper()
	layer := make([]byte, size)
	_, _ = rand.Read(layer)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	for _, blob := range [][]byte{layer, config} {
		resp := benchDo(b, srv, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil)
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.Fatal(err)
		}
		q := loc.Query()
		q.Set("digest", digest.FromBytes(blob).String())
		loc.RawQuery = q.Encode()
		benchDo(b, srv, http.MethodPut, loc.String(), "", blob)
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json",
			"size": len(config), "digest": digest.FromBytes(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
			"size": len(layer), "digest": digest.FromBytes(layer)}},
	})
	benchDo(b, srv, http.MethodPut, "/v2/"+repo+"/manifests/v1",
		"application/vnd.docker.distribution.manifest.v2+json", manifest)
}

func layerOf(b *testing.B, srv *httptest.Server, repo string) string {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/"+repo+"/manifests/v1", nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Layers) != 1 {
		b.Fatalf("manifest of %s: %d %v", repo, resp.StatusCode, err)
	}
	return m.Layers[0].Digest
}

func benchDo(b *testing.B, srv *httptest.Server, method, target, contentType string, body []byte) *http.Response {
	b.Helper()
	if !strings.HasPrefix(target, "http") {
		target = srv.URL + target
	}
	req, _ := http.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("%s %s: %d %s", method, target, resp.StatusCode, msg)
	}
	return resp
}

// BenchmarkAuthorizedWarm is the controller's own cost per request on a warm cache: a pull's
// two reviews (identity and get imagestreams/layers) answered from the cache.
func BenchmarkAuthorizedWarm(b *testing.B) {
	ctl := New(&fakeCluster{}, Options{TTL: time.Hour})
	req := httptest.NewRequest(http.MethodGet, "/v2/ns/app/blobs/sha256:0", nil)
	req.Header.Set("Authorization", basic("any", "t-puller"))
	pull := auth.Access{Resource: auth.Resource{Type: "repository", Name: "ns/app"}, Action: "pull"}
	if _, err := ctl.Authorized(req, pull); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := ctl.Authorized(req, pull); err != nil {
			b.Fatal(err)
		}
	}
}
