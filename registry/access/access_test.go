package access

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TestMain keeps distribution's request logs out of the test output.
func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// fakeCluster answers reviews by a fixed policy: tokens "t-<user>" are valid; see allow.
type fakeCluster struct {
	whoAmICalls, allowedCalls atomic.Int32
	// err, when set, is every review's error; block, when set, holds every review until the
	// review's context ends.
	mu    sync.Mutex
	err   error
	block bool
}

func (f *fakeCluster) fail() (error, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err, f.block
}

func (f *fakeCluster) WhoAmI(ctx context.Context, token string) (string, error) {
	f.whoAmICalls.Add(1)
	if err, block := f.fail(); block {
		<-ctx.Done()
		return "", ctx.Err()
	} else if err != nil {
		return "", err
	}
	user, ok := strings.CutPrefix(token, "t-")
	if !ok {
		return "", apierrors.NewUnauthorized("token not valid")
	}
	return user, nil
}

func (f *fakeCluster) Allowed(
	ctx context.Context,
	token string,
	a authorizationv1.ResourceAttributes,
) (bool, string, error) {
	f.allowedCalls.Add(1)
	if err, block := f.fail(); block {
		<-ctx.Done()
		return false, "", ctx.Err()
	} else if err != nil {
		return false, "", err
	}
	user := AnonymousUser
	if token != "" {
		var ok bool
		if user, ok = strings.CutPrefix(token, "t-"); !ok {
			return false, "", apierrors.NewUnauthorized("token not valid")
		}
	}
	return allow(user, a), "", nil
}

// allow is the fake cluster's RBAC.
func allow(user string, a authorizationv1.ResourceAttributes) bool {
	layers := a.Group == imageGroup && a.Resource == "imagestreams" && a.Subresource == "layers"
	switch user {
	case "admin":
		return true
	case "puller":
		return layers && a.Namespace == "ns" && a.Verb == "get"
	case "pusher":
		return layers && a.Namespace == "ns" && (a.Verb == "get" || a.Verb == "update")
	case "pruner":
		return a.Namespace == "" && a.Group == imageGroup &&
			(a.Verb == "delete" && a.Resource == "images" || a.Verb == "list" && a.Resource == "imagestreams")
	case AnonymousUser:
		return layers && a.Namespace == "public" && a.Verb == "get"
	}
	return false
}

// testRegistry is distribution's app with in-memory storage and the openshift access
// controller asking cluster, behind the controller's Handler, as the registry serves it.
type testRegistry struct {
	t       *testing.T
	cluster *fakeCluster
	ctl     *Controller
	handler http.Handler
}

func newTestRegistry(t *testing.T, opts Options) *testRegistry {
	t.Helper()
	cluster := &fakeCluster{}
	if opts.Log == nil {
		log := logrus.New()
		log.SetLevel(logrus.PanicLevel)
		opts.Log = log
	}
	ctl := New(cluster, opts)
	Setup(ctl, false)
	t.Cleanup(func() { installed.Store(nil) })
	dcfg, err := configuration.Parse(strings.NewReader(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
http:
  secret: test
storage:
  inmemory: {}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
auth:
  openshift: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	app := handlers.NewApp(context.Background(), dcfg)
	return &testRegistry{t: t, cluster: cluster, ctl: ctl, handler: ctl.Handler(app)}
}

// do serves one request; auth is the Authorization header, if any.
func (r *testRegistry) do(method, target, auth string, body []byte) *httptest.ResponseRecorder {
	r.t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	r.handler.ServeHTTP(w, req)
	return w
}

func bearer(user string) string { return "Bearer t-" + user }

func basic(username, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
}

// putBlob stores content in repo as admin and returns its digest.
func (r *testRegistry) putBlob(repo string, content []byte) digest.Digest {
	r.t.Helper()
	d := digest.FromBytes(content)
	w := r.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", bearer("admin"), nil)
	if w.Code != http.StatusAccepted {
		r.t.Fatalf("starting an upload to %s: %d %s", repo, w.Code, w.Body)
	}
	location, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		r.t.Fatal(err)
	}
	query := location.Query()
	query.Set("digest", d.String())
	location.RawQuery = query.Encode()
	w = r.do(http.MethodPut, location.String(), bearer("admin"), content)
	if w.Code != http.StatusCreated {
		r.t.Fatalf("storing a blob in %s: %d %s", repo, w.Code, w.Body)
	}
	return d
}

// errorCode is the first code of a registry error body.
func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("body %q is not a registry error: %v", w.Body, err)
	}
	return body.Errors[0].Code
}

func TestRequestsDecidedByTheCluster(t *testing.T) {
	reg := newTestRegistry(t, Options{})
	blob := reg.putBlob("ns/app", []byte("layer"))
	blobURL := "/v2/ns/app/blobs/" + blob.String()
	const challenge = `Bearer realm="http://example.com/openshift/token"`
	const denied = `Basic realm="origin",error="access denied"`

	for _, tt := range []struct {
		name, method, target, auth string
		status                     int
		code, challenge            string
	}{
		{"base route without credentials", "GET", "/v2/", "", 401, "UNAUTHORIZED", challenge},
		{"base route, token anonymous", "GET", "/v2/", "Bearer anonymous", 200, "", ""},
		{"base route, valid token", "GET", "/v2/", bearer("nobody"), 200, "", ""},
		{"base route, Basic credentials", "GET", "/v2/", basic("anyone", "t-nobody"), 200, "", ""},
		{"base route, invalid token", "GET", "/v2/", "Bearer not-a-token", 401, "UNAUTHORIZED", denied},
		{"pull, anonymous", "GET", blobURL, "", 401, "UNAUTHORIZED", challenge},
		{"pull, token anonymous", "GET", blobURL, "Bearer anonymous", 401, "UNAUTHORIZED", challenge},
		{"pull, no rights", "GET", blobURL, bearer("nobody"), 403, "DENIED", ""},
		{"pull, puller", "GET", blobURL, bearer("puller"), 200, "", ""},
		{"pull, puller by Basic", "HEAD", blobURL, basic("", "t-puller"), 200, "", ""},
		{"pull, pruner", "GET", blobURL, bearer("pruner"), 403, "DENIED", ""},
		{"pull, invalid token", "GET", blobURL, "Bearer nope", 401, "UNAUTHORIZED", denied},
		{"pull from a public namespace, anonymous", "GET", "/v2/public/app/tags/list", "", 404, "NAME_UNKNOWN", ""},
		{"push, puller", "POST", "/v2/ns/app/blobs/uploads/", bearer("puller"), 403, "DENIED", ""},
		{"push, pusher", "POST", "/v2/ns/app/blobs/uploads/", bearer("pusher"), 202, "", ""},
		{"push elsewhere, pusher", "POST", "/v2/other/app/blobs/uploads/", bearer("pusher"), 403, "DENIED", ""},
		{"push, anonymous", "POST", "/v2/ns/app/blobs/uploads/", "", 401, "UNAUTHORIZED", challenge},
		{"delete a layer link, pusher", "DELETE", blobURL, bearer("pusher"), 403, "DENIED", ""},
		{"delete a layer link, pruner", "DELETE", blobURL, bearer("pruner"), 202, "", ""},
		{"catalog, pusher", "GET", "/v2/_catalog", bearer("pusher"), 403, "DENIED", ""},
		{"catalog, pruner", "GET", "/v2/_catalog", bearer("pruner"), 200, "", ""},
		{"catalog, anonymous", "GET", "/v2/_catalog", "", 401, "UNAUTHORIZED", challenge},
		{"a repository that is no image stream", "GET", "/v2/app/tags/list", bearer("admin"), 400, "NAME_INVALID", ""},
		{"a repository too deep", "GET", "/v2/a/b/c/tags/list", bearer("admin"), 400, "NAME_INVALID", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := reg.do(tt.method, "http://example.com"+tt.target, tt.auth, nil)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if tt.code != "" {
				if got := errorCode(t, w); got != tt.code {
					t.Errorf("code %s, want %s", got, tt.code)
				}
				if n := strings.Count(w.Body.String(), `"errors"`); n != 1 {
					t.Errorf("body has %d error documents: %s", n, w.Body)
				}
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
		})
	}
}

// Cancelling an upload needs push; deleting anything else, delete images.
func TestCancelUploadNeedsPush(t *testing.T) {
	reg := newTestRegistry(t, Options{})
	w := reg.do(http.MethodPost, "/v2/ns/app/blobs/uploads/", bearer("pusher"), nil)
	if w.Code != http.StatusAccepted {
		t.Fatalf("starting an upload: %d %s", w.Code, w.Body)
	}
	upload := w.Header().Get("Location")
	if w := reg.do(http.MethodDelete, upload, bearer("puller"), nil); w.Code != http.StatusForbidden {
		t.Errorf("puller cancelling: %d %s", w.Code, w.Body)
	}
	if w := reg.do(http.MethodDelete, upload, bearer("pusher"), nil); w.Code != http.StatusNoContent {
		t.Errorf("pusher cancelling: %d %s", w.Code, w.Body)
	}
	if w := reg.do(http.MethodDelete, "/v2/ns/app/manifests/"+digest.FromString("m").String(),
		bearer("pusher"), nil); w.Code != http.StatusForbidden {
		t.Errorf("pusher deleting a manifest: %d %s", w.Code, w.Body)
	}
}

// A mount from a repository the client may not pull becomes a plain upload (202), never a
// mount (201) nor a refusal of the whole push.
func TestCrossRepositoryMount(t *testing.T) {
	reg := newTestRegistry(t, Options{})
	inNS := reg.putBlob("ns/src", []byte("mine"))
	elsewhere := reg.putBlob("other/src", []byte("theirs"))
	mount := func(d digest.Digest, from, user string) *httptest.ResponseRecorder {
		return reg.do(http.MethodPost, "/v2/ns/app/blobs/uploads/?mount="+d.String()+"&from="+from, bearer(user), nil)
	}
	if w := mount(inNS, "ns/src", "pusher"); w.Code != http.StatusCreated {
		t.Errorf("mount from a pulled repository: %d %s", w.Code, w.Body)
	}
	w := mount(elsewhere, "other/src", "pusher")
	if w.Code != http.StatusAccepted || !strings.Contains(w.Header().Get("Location"), "/blobs/uploads/") {
		t.Errorf("mount from a repository not pulled: %d %s, Location %q", w.Code, w.Body, w.Header().Get("Location"))
	}
	if w := reg.do(http.MethodHead, "/v2/ns/app/blobs/"+elsewhere.String(), bearer("pusher"), nil); w.Code != 404 {
		t.Errorf("the refused mount's blob is served in ns/app: %d", w.Code)
	}
	if w := mount(inNS, "ns/src", "puller"); w.Code != http.StatusForbidden {
		t.Errorf("mount by a puller: %d %s", w.Code, w.Body)
	}
}

// Malformed credentials are refused with a challenge, never served as anonymous nor a panic.
func TestMalformedCredentials(t *testing.T) {
	reg := newTestRegistry(t, Options{})
	const decode = `Basic realm="origin",error="failed to decode credentials"`
	for _, header := range []string{
		"Basic !!!notbase64", "Basic " + base64.StdEncoding.EncodeToString([]byte("no colon")),
		basic("user", ""), "Token abc", "Bearer", "Bearer ", "Bearer a b", "Bearer t-admin\x01",
		"Bearer " + strings.Repeat("\xff", 10), "basic", "Negotiate YII=",
	} {
		t.Run(fmt.Sprintf("%q", header), func(t *testing.T) {
			w := reg.do(http.MethodGet, "/v2/public/app/tags/list", header, nil)
			if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != decode {
				t.Errorf("%d, WWW-Authenticate %q, body %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
			}
		})
	}
	if n := reg.cluster.whoAmICalls.Load() + reg.cluster.allowedCalls.Load(); n != 0 {
		t.Errorf("%d reviews for malformed credentials", n)
	}
}

// A review that fails or does not answer refuses with 503, in bounded time.
func TestReviewFailures(t *testing.T) {
	reg := newTestRegistry(t, Options{Timeout: 200 * time.Millisecond, TTL: -1})
	target := "/v2/ns/app/tags/list"
	for _, tt := range []struct {
		name  string
		err   error
		block bool
	}{
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
		{"server error", apierrors.NewInternalError(errors.New("etcd")), false},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), false},
		{"no answer", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg.cluster.mu.Lock()
			reg.cluster.err, reg.cluster.block = tt.err, tt.block
			reg.cluster.mu.Unlock()
			for _, auth := range []string{bearer("admin"), ""} {
				start := time.Now()
				w := reg.do(http.MethodGet, target, auth, nil)
				if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "UNAVAILABLE" {
					t.Errorf("auth %q: %d %s", auth, w.Code, w.Body)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("auth %q: answered after %v", auth, took)
				}
			}
		})
	}
}

// Answers are kept for the TTL, per token and review; concurrent askers share one review.
func TestDecisionsCached(t *testing.T) {
	reg := newTestRegistry(t, Options{TTL: 300 * time.Millisecond})
	target := "/v2/ns/app/tags/list"
	for range 5 {
		if w := reg.do(http.MethodGet, target, bearer("nobody"), nil); w.Code != http.StatusForbidden {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	if w, a := reg.cluster.whoAmICalls.Load(), reg.cluster.allowedCalls.Load(); w != 1 || a != 1 {
		t.Errorf("%d identity and %d access reviews for 5 requests, want 1 and 1", w, a)
	}
	// Another token is another question.
	reg.do(http.MethodGet, target, bearer("puller"), nil)
	if a := reg.cluster.allowedCalls.Load(); a != 2 {
		t.Errorf("%d access reviews after a second token, want 2", a)
	}
	time.Sleep(400 * time.Millisecond)
	reg.do(http.MethodGet, target, bearer("nobody"), nil)
	if a := reg.cluster.allowedCalls.Load(); a != 3 {
		t.Errorf("%d access reviews after the TTL, want 3", a)
	}

	// Concurrent first requests of one token: one review each, not one per request.
	reg2 := newTestRegistry(t, Options{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reg2.do(http.MethodGet, target, bearer("puller"), nil)
		}()
	}
	wg.Wait()
	if w, a := reg2.cluster.whoAmICalls.Load(), reg2.cluster.allowedCalls.Load(); w > 2 || a > 2 {
		t.Errorf("%d identity and %d access reviews for 20 concurrent requests", w, a)
	}
	// The cache holds digests of tokens, not tokens.
	for _, key := range reg2.ctl.answers.Keys() {
		if strings.Contains(fmt.Sprint(key), "t-puller") {
			t.Errorf("cache key %q holds the token", key)
		}
	}
}

func TestTokenEndpoint(t *testing.T) {
	reg := newTestRegistry(t, Options{})
	for _, tt := range []struct {
		name, auth string
		status     int
		token      string
	}{
		{"no credentials", "", 200, "anonymous"},
		{"a valid token as the password", basic("anyone", "t-puller"), 200, "t-puller"},
		{"an invalid token", basic("anyone", "forged"), 401, ""},
		{"no password", basic("anyone", ""), 401, ""},
		{"a bearer token", bearer("puller"), 401, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := reg.do(http.MethodGet, "/openshift/token?account=x&scope=repository:ns/app:pull", tt.auth, nil)
			if w.Code != tt.status || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
			}
			if tt.token == "" {
				return
			}
			var got map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got["token"] != tt.token || got["access_token"] != tt.token || len(got) != 2 {
				t.Errorf("body %v, want the token %q twice", got, tt.token)
			}
		})
	}
	reg.cluster.mu.Lock()
	reg.cluster.err = errors.New("connection refused")
	reg.cluster.mu.Unlock()
	if w := reg.do(http.MethodGet, "/openshift/token", basic("a", "t-other"), nil); w.Code != 503 {
		t.Errorf("cluster down: %d %s", w.Code, w.Body)
	}
}

// Challenges name the token endpoint as the client reached it, or openshift.auth.tokenrealm.
func TestChallengeRealm(t *testing.T) {
	reg := newTestRegistry(t, Options{})
	req := httptest.NewRequest(http.MethodGet, "http://10.0.0.1:5000/v2/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "registry.example.com, proxy.internal")
	w := httptest.NewRecorder()
	reg.handler.ServeHTTP(w, req)
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="https://registry.example.com/openshift/token"` {
		t.Errorf("behind a proxy: %q", got)
	}

	realm, _ := url.Parse("https://token.example.com:8443/openshift/token")
	reg = newTestRegistry(t, Options{TokenRealm: realm, Realm: "openshift"})
	w = reg.do(http.MethodGet, "/v2/", "", nil)
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="https://token.example.com:8443/openshift/token"` {
		t.Errorf("tokenrealm: %q", got)
	}
	w = reg.do(http.MethodGet, "/v2/", "Bearer bad", nil)
	if got := w.Header().Get("WWW-Authenticate"); got != `Basic realm="openshift",error="access denied"` {
		t.Errorf("realm: %q", got)
	}
}

func TestAuthorizeAdmin(t *testing.T) {
	admin := func(auth string) (*http.Request, error) {
		req := httptest.NewRequest(http.MethodDelete, "http://example.com/admin/blobs/"+digest.FromString("b").String(), nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return req, AuthorizeAdmin(context.Background(), req)
	}
	installed.Store(nil)
	if _, err := admin(bearer("pruner")); err == nil {
		t.Error("allowed before Setup")
	}
	Setup(nil, true)
	if _, err := admin(""); err != nil {
		t.Errorf("no access controller configured: %v", err)
	}
	Setup(nil, false)
	if _, err := admin(bearer("pruner")); err == nil {
		t.Error("allowed under another access controller")
	}

	reg := newTestRegistry(t, Options{})
	for _, tt := range []struct {
		auth      string
		status    int
		challenge string
	}{
		{basic("x", "t-pruner"), 0, ""},
		{bearer("pusher"), 403, ""},
		{"", 401, `Bearer realm="http://example.com/openshift/token"`},
		{"Bearer forged", 401, `Basic realm="origin",error="access denied"`},
	} {
		_, err := admin(tt.auth)
		if tt.status == 0 {
			if err != nil {
				t.Errorf("%q: %v", tt.auth, err)
			}
			continue
		}
		w := httptest.NewRecorder()
		WriteRefusal(w, err)
		if w.Code != tt.status || w.Header().Get("WWW-Authenticate") != tt.challenge {
			t.Errorf("%q: %d %q %s", tt.auth, w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
		}
	}
	if w, a := reg.cluster.whoAmICalls.Load(), reg.cluster.allowedCalls.Load(); w == 0 || a == 0 {
		t.Errorf("the admin check asked no review (%d, %d)", w, a)
	}
}

// The guard keeps the writer's io.ReaderFrom, which sends a blob file by sendfile, and drops
// what is written after a refusal answered.
func TestGuard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		g := &guard{}
		ww := g.wrap(w)
		if _, ok := ww.(io.ReaderFrom); !ok {
			t.Error("the wrapped writer lost io.ReaderFrom")
		}
		if _, ok := ww.(http.Flusher); !ok {
			t.Error("the wrapped writer lost http.Flusher")
		}
		ww.WriteHeader(http.StatusForbidden)
		_, _ = ww.Write([]byte("first"))
		g.sealed.Store(true)
		ww.WriteHeader(http.StatusUnauthorized)
		_, _ = ww.Write([]byte("second"))
		_, _ = ww.(io.ReaderFrom).ReadFrom(strings.NewReader("third"))
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || string(body) != "first" {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
}
