package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/online"
)

// faultyAPI puts a reverse proxy in front of the real image API server. fault decides, per
// request, whether to answer in the server's stead (status and body) or pass it on.
func faultyAPI(t *testing.T, e *env, fault func(r *http.Request, n int64) (int, string, bool)) (kubeconfig string) {
	t.Helper()
	ca, err := os.ReadFile(e.api.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	upstream, _ := url.Parse(e.api.URL)
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, body, ok := fault(r, n.Add(1)); ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprint(w, body)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: faulty, cluster: {server: %q}}]
users: [{name: u, user: {token: any}}]
contexts: [{name: c, context: {cluster: faulty, user: u}}]
current-context: c
`, srv.URL)
	if err := os.WriteFile(kubeconfig, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// populated pushes two images into two streams and orphans one, so that a prune that went
// ahead would delete something.
func populated(t *testing.T) *env {
	e := newEnv(t)
	e.startRegistry()
	for i := range 3 {
		e.mustPush(fmt.Sprintf("ns/app%d:latest", i), image(t, fmt.Sprint(i), "base", fmt.Sprintf("own-%d", i)))
	}
	if err := e.images.ImageStreams("ns").Delete(context.Background(), "app0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.startRegistry(`REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`)
	return e
}

const statusJSON = `{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"reason":%q,"code":%d}`

// TestAPIFailuresDeleteNothing: an image API that fails part way, in the ways it does, stops
// the prune before anything is deleted, with one clear line and exit code 1.
func TestAPIFailuresDeleteNothing(t *testing.T) {
	e := populated(t)
	tests := []struct {
		name   string
		fault  func(r *http.Request, n int64) (int, string, bool)
		errHas string
	}{
		{
			name: "server error on the second page of images",
			fault: func(r *http.Request, _ int64) (int, string, bool) {
				if strings.HasSuffix(r.URL.Path, "/images") && r.URL.Query().Get("continue") != "" {
					return 500, fmt.Sprintf(statusJSON, "etcdserver: request timed out", "InternalError", 500), true
				}
				return 0, "", false
			},
			errHas: "listing images",
		},
		{
			name: "forbidden on image streams",
			fault: func(r *http.Request, _ int64) (int, string, bool) {
				if strings.HasSuffix(r.URL.Path, "/imagestreams") {
					return 403, fmt.Sprintf(
						statusJSON,
						`imagestreams.image.openshift.io is forbidden: User "system:serviceaccount:openshift-image-registry:registry" cannot list resource "imagestreams"`,
						"Forbidden",
						403,
					), true
				}
				return 0, "", false
			},
			errHas: "system:image-pruner",
		},
		{
			name: "continue token that keeps expiring",
			fault: func(r *http.Request, _ int64) (int, string, bool) {
				if r.URL.Query().Get("continue") != "" {
					return 410, fmt.Sprintf(
						statusJSON,
						"The provided continue parameter is too old",
						"Expired",
						410,
					), true
				}
				return 0, "", false
			},
			errHas: "kept expiring",
		},
		{
			name: "garbage instead of a list",
			fault: func(r *http.Request, _ int64) (int, string, bool) {
				if strings.HasSuffix(r.URL.Path, "/images") {
					return 200, `{"kind":"ImageList","items":[{"metadata":{"name":`, true
				}
				return 0, "", false
			},
			errHas: "listing images",
		},
	}
	before := e.snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := faultyAPI(t, e, tt.fault)
			res := e.prune(
				[]string{"REGISTRY_OPENSHIFT_KUBECONFIG=" + kc},
				"-prune=delete",
				noGrace,
				"-prune-page-size=2",
			)
			if res.ExitCode != 1 {
				t.Errorf("exit code %d, want 1", res.ExitCode)
			}
			if res.Stdout != "" {
				t.Errorf("printed a summary although nothing ran:\n%s", res.Stdout)
			}
			lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "error: reading the image API (nothing was deleted): ") ||
				!strings.Contains(last, tt.errHas) {
				t.Errorf("last line %q, want the nothing-deleted error naming %q", last, tt.errHas)
			}
			if e.snapshot() != before {
				t.Fatal("storage changed")
			}
		})
	}

	// One expiry, then the API recovers: the listing starts over and the prune completes.
	var expired atomic.Bool
	kc := faultyAPI(t, e, func(r *http.Request, _ int64) (int, string, bool) {
		if r.URL.Query().Get("continue") != "" && expired.CompareAndSwap(false, true) {
			return 410, fmt.Sprintf(statusJSON, "The provided continue parameter is too old", "Expired", 410), true
		}
		return 0, "", false
	})
	res := e.prune(
		[]string{"REGISTRY_OPENSHIFT_KUBECONFIG=" + kc, "REGISTRY_LOG_LEVEL=warning"},
		"-prune=check",
		noGrace,
		"-prune-page-size=2",
	)
	if res.ExitCode != 0 || !strings.Contains(res.Stderr, "starting over") ||
		!strings.HasPrefix(res.Stdout, "Would delete 0 blobs") {
		t.Errorf("after one expiry: exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if !strings.Contains(res.Stdout, "Would delete 1 repositories") {
		t.Errorf("the restarted listing missed the orphaned repository:\n%s", res.Stdout)
	}
}

// TestMalformedImageDeletesNothing: an Image whose layers cannot be read might be keeping blobs
// alive; the prune refuses to guess.
func TestMalformedImageDeletesNothing(t *testing.T) {
	e := populated(t)
	bad := &imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: "sha256:" + strings.Repeat("ab", 32)},
		DockerImageLayers: []imagev1.ImageLayer{{Name: "not-a-digest", LayerSize: 1}}}
	if _, err := e.images.Images().Create(context.Background(), bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	res := e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, `layer 0 "not-a-digest" is not a digest`) ||
		res.Stdout != "" {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if e.snapshot() != before {
		t.Fatal("storage changed")
	}
}

// TestReadOnlyEnvironmentForms: both environment spellings start the registry read-only (the
// _ENABLED one crashes distribution's own binary), and a prune in that pod may delete; in a
// writable pod it runs online when the registry speaks the online prune protocol, and refuses
// when it does not.
func TestReadOnlyEnvironmentForms(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	e.mustPush("ns/app:latest", image(t, "x", "layer"))
	for _, form := range []string{`REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`, "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true"} {
		t.Run(form, func(t *testing.T) {
			e.startRegistry(form)
			err := e.push("ns/app:blocked", image(t, "blocked", "blocked-layer"))
			if err == nil || !strings.Contains(err.Error(), "405 Method Not Allowed") {
				t.Errorf("push on a read-only registry: err = %v, want a read-only refusal", err)
			}
			if err := e.pullsIdentical("ns/app:latest", image(t, "x", "layer")); err != nil {
				t.Errorf("pull on a read-only registry: %v", err)
			}
			if res := e.prune(nil, "-prune=delete", noGrace); res.ExitCode != 0 {
				t.Errorf("delete in a read-only pod: exit %d\n%s", res.ExitCode, res.Stderr)
			}
		})
	}
	// A writable registry that does not speak the online prune protocol: refused.
	e.startRegistry(online.ProtocolEnv + "=1")
	if res := e.prune(nil, "-prune=delete", noGrace); res.ExitCode != 1 ||
		!strings.Contains(res.Stderr, "not read-only") || !strings.Contains(res.Stderr, "speaks protocol 1") {
		t.Errorf("delete in a writable pod beside a protocol 1 registry: exit %d\n%s", res.ExitCode, res.Stderr)
	}
	// One that does: the delete runs while it serves.
	e.startRegistry()
	if res := e.prune(nil, "-prune=delete", noGrace); res.ExitCode != 0 ||
		!strings.Contains(res.Stderr, "pruning online, every serving registry taking part (1,") {
		t.Errorf("delete in a writable pod, online: exit %d\n%s", res.ExitCode, res.Stderr)
	}
	if res := e.prune(nil, "-prune=delete", noGrace, "-prune-ignore-read-only"); res.ExitCode != 0 {
		t.Errorf("delete with the override: exit %d\n%s", res.ExitCode, res.Stderr)
	}
}

// TestTagOutsideAnImageStreamRepository: a tag pushed to a repository no image stream can map
// to is refused before anything is stored or recorded.
func TestTagOutsideAnImageStreamRepository(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	img := image(t, "deep", "deep-layer")
	err := e.push("a/b/c:latest", img)
	if err == nil || !strings.Contains(err.Error(), "NAME_INVALID") {
		t.Fatalf("push to a/b/c:latest: err = %v, want NAME_INVALID", err)
	}
	d, _ := img.Digest()
	if _, err := e.images.Images().Get(context.Background(), d.String(), metav1.GetOptions{}); err == nil {
		t.Error("the refused push created an Image")
	}
}
