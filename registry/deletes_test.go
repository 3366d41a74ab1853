package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	imagev1 "github.com/openshift/api/image/v1"
	"github.com/openshift/client-go/image/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"github.com/hardprune/image-registry/cache"
	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// deletesFixture is the delete endpoints over an in-memory storage driver, filled through
// distribution's own storage code, in front of a stand-in for distribution's app.
type deletesFixture struct {
	t       *testing.T
	drv     storagedriver.StorageDriver
	reg     *testfixture.Registry
	store   *storage.Store
	api     *fake.Clientset
	memory  *cache.ResettableMemory
	d       *Deletes
	handler http.Handler
	passed  []string // requests handed on to the app: "METHOD path"
}

func newDeletesFixture(t *testing.T) *deletesFixture {
	t.Helper()
	drv := inmemory.New()
	f := &deletesFixture{t: t, drv: drv, reg: testfixture.New(t, drv), api: fake.NewSimpleClientset()}
	f.store = &storage.Store{Driver: drv}
	f.memory = cache.NewResettableMemory(0)
	f.d = &Deletes{
		Store:         f.store,
		Remover:       &cache.Serving{Remover: f.store, Memory: f.memory},
		Streams:       f.api.ImageV1(),
		DeleteEnabled: true,
	}
	f.handler = f.d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.passed = append(f.passed, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	}))
	return f
}

func (f *deletesFixture) do(method, path string) *httptest.ResponseRecorder {
	f.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	// What oc adm prune images sends: the token as the password of Basic auth.
	req.SetBasicAuth("unused", "sha256~pruner-token")
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

// stream records an image stream whose tag histories name the given manifests.
func (f *deletesFixture) stream(namespace, name string, history map[string][]digest.Digest) {
	f.t.Helper()
	is := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	for tag, ds := range history {
		list := imagev1.NamedTagEventList{Tag: tag}
		for _, d := range ds {
			list.Items = append(list.Items, imagev1.TagEvent{Image: d.String()})
		}
		is.Status.Tags = append(is.Status.Tags, list)
	}
	ctx := context.Background()
	_, err := f.api.ImageV1().ImageStreams(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = f.api.ImageV1().ImageStreams(namespace).Create(ctx, is, metav1.CreateOptions{})
	} else if err == nil {
		_, err = f.api.ImageV1().ImageStreams(namespace).UpdateStatus(ctx, is, metav1.UpdateOptions{})
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

// files lists every file in storage, for "nothing changed" checks.
func (f *deletesFixture) files() []string {
	f.t.Helper()
	var out []string
	err := f.drv.Walk(context.Background(), "/", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() {
			out = append(out, fi.Path())
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (f *deletesFixture) stored(o prune.Object) bool {
	f.t.Helper()
	found, err := f.store.Stored(context.Background(), o)
	if err != nil {
		f.t.Fatal(err)
	}
	return found
}

func layerLink(repo string, d digest.Digest) prune.Object {
	return prune.Object{Kind: prune.KindLayerLink, Repository: repo, Digest: d}
}

func manifestLink(repo string, d digest.Digest) prune.Object {
	return prune.Object{Kind: prune.KindManifestLink, Repository: repo, Digest: d}
}

func blobObject(d digest.Digest) prune.Object { return prune.Object{Kind: prune.KindBlob, Digest: d} }

// wantError checks an answer in the registry's error format: the status and the first code.
func wantError(t *testing.T, what string, rec *httptest.ResponseRecorder, status int, code errcode.ErrorCode) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("%s: status %d, want %d; body %s", what, rec.Code, status, rec.Body)
		return
	}
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		t.Errorf("%s: body %q is not the registry's error format (%v)", what, rec.Body, err)
		return
	}
	if got := body.Errors[0].Code; got != code.String() {
		t.Errorf("%s: code %s, want %s; body %s", what, got, code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
}

func TestDeleteLayerLinkRemovesTheLinkNotTheBlob(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base", "app-only")
	other := f.reg.Image("ns/other", "latest", "other", "base", "other-only")
	base := img.Layers[0]

	rec := f.do(http.MethodDelete, "/v2/ns/app/blobs/"+base.String())
	if rec.Code != http.StatusAccepted || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "0" {
		t.Fatalf("status %d, Content-Length %q, body %q; want 202, empty", rec.Code,
			rec.Header().Get("Content-Length"), rec.Body)
	}
	if v := rec.Header().Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
		t.Errorf("API version header %q", v)
	}
	if f.stored(layerLink("ns/app", base)) {
		t.Error("the layer link is still stored")
	}
	if !f.stored(blobObject(base)) || !f.stored(layerLink("ns/other", base)) {
		t.Error("the blob, or another repository's link to it, went with the link")
	}
	if err := f.reg.Pull("ns/other", other); err != nil {
		t.Errorf("ns/other no longer pulls: %v", err)
	}

	// Absent: 404, and oc counts that as done.
	wantError(t, "deleted twice", f.do(http.MethodDelete, "/v2/ns/app/blobs/"+base.String()),
		http.StatusNotFound, errcode.ErrorCodeBlobUnknown)
	// Only the repository's layer links: a manifest is not a layer of it.
	wantError(t, "a manifest digest", f.do(http.MethodDelete, "/v2/ns/app/blobs/"+img.Manifest.String()),
		http.StatusNotFound, errcode.ErrorCodeBlobUnknown)
	if len(f.passed) != 0 {
		t.Errorf("requests handed to the app: %v", f.passed)
	}
}

func TestDeleteManifestLinkAndTheTagsNamingIt(t *testing.T) {
	f := newDeletesFixture(t)
	old := f.reg.Image("ns/app", "latest", "old", "base", "old-only")
	cur := f.reg.Image("ns/app", "latest", "cur", "base", "cur-only") // latest's index: old, cur
	f.reg.Tag("ns/app", "v1", old.Manifest)
	f.reg.Tag("ns/app", "stable", cur.Manifest)
	// The ordinary prune removed old from the history already; cur stays.
	f.stream("ns", "app", map[string][]digest.Digest{"latest": {cur.Manifest}, "stable": {cur.Manifest}})

	rec := f.do(http.MethodDelete, "/v2/ns/app/manifests/"+old.Manifest.String())
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if f.stored(manifestLink("ns/app", old.Manifest)) {
		t.Error("the revision link is still stored")
	}
	tag := func(name string, d digest.Digest) prune.Object {
		return prune.Object{Kind: prune.KindTag, Repository: "ns/app", Name: name, Digest: d}
	}
	entry := func(name string, d digest.Digest) prune.Object {
		return prune.Object{Kind: prune.KindTagIndexEntry, Repository: "ns/app", Name: name, Digest: d}
	}
	if f.stored(tag("v1", old.Manifest)) {
		t.Error("tag v1, which pointed at the manifest, is still stored")
	}
	if f.stored(entry("latest", old.Manifest)) {
		t.Error("latest's index still names the manifest")
	}
	if !f.stored(entry("latest", cur.Manifest)) || !f.stored(tag("stable", cur.Manifest)) {
		t.Error("what names the other manifest went too")
	}
	for _, b := range []digest.Digest{old.Manifest, old.Config, old.Layers[1]} {
		if !f.stored(blobObject(b)) {
			t.Errorf("blob %s was deleted: only the link goes", b)
		}
	}
	if err := f.reg.Pull("ns/app", cur); err != nil {
		t.Errorf("the other image no longer pulls: %v", err)
	}
	wantError(t, "deleted twice", f.do(http.MethodDelete, "/v2/ns/app/manifests/"+old.Manifest.String()),
		http.StatusNotFound, errcode.ErrorCodeManifestUnknown)
}

// While a tag history names the manifest, OpenShift's registry refuses: 405, nothing deleted.
// Once the history no longer names it, the same call succeeds.
func TestDeleteManifestNamedByTheStreamIsRefused(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base")
	f.stream("ns", "app", map[string][]digest.Digest{"latest": {digest.FromString("newer"), img.Manifest}})
	before := f.files()

	rec := f.do(http.MethodDelete, "/v2/ns/app/manifests/"+img.Manifest.String())
	wantError(t, "named by the history", rec, http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported)
	if !strings.Contains(rec.Body.String(), "latest") {
		t.Errorf("the detail does not name the tag: %s", rec.Body)
	}
	if got := f.files(); !reflect.DeepEqual(got, before) {
		t.Errorf("storage changed:\n%v\nwant:\n%v", got, before)
	}

	f.stream("ns", "app", map[string][]digest.Digest{"latest": {digest.FromString("newer")}})
	if rec := f.do(http.MethodDelete, "/v2/ns/app/manifests/"+img.Manifest.String()); rec.Code != http.StatusAccepted {
		t.Fatalf("after the history dropped it: %d %s", rec.Code, rec.Body)
	}
	if f.stored(manifestLink("ns/app", img.Manifest)) {
		t.Error("the revision link is still stored")
	}
}

// A repository no stream can map to (not <namespace>/<name>), or whose stream is gone, has no
// history to protect its manifests.
func TestDeleteManifestWithoutStream(t *testing.T) {
	f := newDeletesFixture(t)
	nested := f.reg.Image("ns/app/sub", "", "nested", "base")
	gone := f.reg.Image("ns/gone", "latest", "gone", "base")
	for repo, d := range map[string]digest.Digest{"ns/app/sub": nested.Manifest, "ns/gone": gone.Manifest} {
		if rec := f.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+d.String()); rec.Code != http.StatusAccepted {
			t.Errorf("%s: %d %s", repo, rec.Code, rec.Body)
		}
		if f.stored(manifestLink(repo, d)) {
			t.Errorf("%s: the revision link is still stored", repo)
		}
	}
}

// An image API that cannot say whether the history names the manifest keeps the link.
func TestDeleteManifestWhenTheImageAPIFails(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base")
	f.api.PrependReactor("get", "imagestreams", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd is down")
	})
	before := f.files()
	rec := f.do(http.MethodDelete, "/v2/ns/app/manifests/"+img.Manifest.String())
	wantError(t, "image API down", rec, http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable)
	if got := f.files(); !reflect.DeepEqual(got, before) {
		t.Errorf("storage changed:\n%v\nwant:\n%v", got, before)
	}
}

func TestDeleteAdminBlob(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base", "app-only")
	own := img.Layers[1]
	// The admin call needs no storage.delete.enabled, as upstream.
	f.d.DeleteEnabled = false

	for i := range 2 { // the second time it is already absent: 204 again
		rec := f.do(http.MethodDelete, "/admin/blobs/"+own.String())
		if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Fatalf("call %d: status %d, body %q; want 204", i+1, rec.Code, rec.Body)
		}
	}
	if f.stored(blobObject(own)) {
		t.Error("the blob is still stored")
	}
	// No reference check: the link stays, and the pruner decides what goes.
	if !f.stored(layerLink("ns/app", own)) {
		t.Error("the link went with the blob")
	}
	rec := f.do(http.MethodGet, "/admin/blobs/"+own.String())
	wantError(t, "GET", rec, http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported)
	if rec.Header().Get("Allow") != http.MethodDelete {
		t.Errorf("Allow: %q", rec.Header().Get("Allow"))
	}
}

// storage.delete.enabled off: the link deletes are refused as distribution refuses them.
func TestDeletesDisabled(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base")
	f.d.DeleteEnabled = false
	before := f.files()
	for _, p := range []string{
		"/v2/ns/app/blobs/" + img.Layers[0].String(),
		"/v2/ns/app/manifests/" + img.Manifest.String(),
	} {
		wantError(t, p, f.do(http.MethodDelete, p), http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported)
	}
	if got := f.files(); !reflect.DeepEqual(got, before) {
		t.Errorf("storage changed:\n%v\nwant:\n%v", got, before)
	}
}

// Read-only: every call is refused, the admin one included, and storage is unchanged.
func TestDeletesRefusedWhileReadOnly(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base")
	f.d.ReadOnly = true
	before := f.files()
	for _, p := range []string{
		"/v2/ns/app/blobs/" + img.Layers[0].String(),
		"/v2/ns/app/manifests/" + img.Manifest.String(),
		"/admin/blobs/" + img.Layers[0].String(),
	} {
		rec := f.do(http.MethodDelete, p)
		wantError(t, p, rec, http.StatusMethodNotAllowed, errcode.ErrorCodeUnsupported)
		if !strings.Contains(rec.Body.String(), "read-only") {
			t.Errorf("%s: the detail does not say read-only: %s", p, rec.Body)
		}
	}
	if got := f.files(); !reflect.DeepEqual(got, before) {
		t.Errorf("storage changed:\n%v\nwant:\n%v", got, before)
	}
}

// Bad input gets a 4xx in the registry's error format, and changes nothing.
func TestDeletesBadInput(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base")
	d := img.Layers[0].String()
	before := f.files()
	tests := []struct {
		path   string
		status int
		code   errcode.ErrorCode
	}{
		{"/v2/ns/app/blobs/sha256:zz", http.StatusBadRequest, errcode.ErrorCodeDigestInvalid},
		{"/v2/ns/app/blobs/latest", http.StatusBadRequest, errcode.ErrorCodeDigestInvalid},
		{"/v2/ns/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", http.StatusBadRequest,
			errcode.ErrorCodeDigestInvalid},
		{"/v2/ns/app/blobs/" + strings.ToUpper(d), http.StatusBadRequest, errcode.ErrorCodeDigestInvalid},
		{"/v2/ns/app/manifests/sha256:abc", http.StatusBadRequest, errcode.ErrorCodeDigestInvalid},
		{"/v2/NS/App/blobs/" + d, http.StatusBadRequest, errcode.ErrorCodeNameInvalid},
		{"/v2//blobs/" + d, http.StatusBadRequest, errcode.ErrorCodeNameInvalid},
		{"/v2/ns/../blobs/" + d, http.StatusBadRequest, errcode.ErrorCodeNameInvalid},
		{"/v2/ns/-app/manifests/" + d, http.StatusBadRequest, errcode.ErrorCodeNameInvalid},
		{"/v2/ns/" + strings.Repeat("a", 300) + "/blobs/" + d, http.StatusBadRequest, errcode.ErrorCodeNameInvalid},
		{"/admin/blobs/garbage", http.StatusBadRequest, errcode.ErrorCodeDigestInvalid},
		{"/admin/blobs/", http.StatusBadRequest, errcode.ErrorCodeDigestInvalid},
		{"/admin/blobs/" + d + "/more", http.StatusBadRequest, errcode.ErrorCodeDigestInvalid},
		// A repository storage does not hold: nothing of it to delete.
		{"/v2/ns/unknown/blobs/" + d, http.StatusNotFound, errcode.ErrorCodeBlobUnknown},
		{"/v2/ns/unknown/manifests/" + d, http.StatusNotFound, errcode.ErrorCodeManifestUnknown},
	}
	for _, tt := range tests {
		wantError(t, tt.path, f.do(http.MethodDelete, tt.path), tt.status, tt.code)
	}
	if got := f.files(); !reflect.DeepEqual(got, before) {
		t.Errorf("storage changed:\n%v\nwant:\n%v", got, before)
	}
	if len(f.passed) != 0 {
		t.Errorf("requests handed to the app: %v", f.passed)
	}
}

// Everything else is distribution's: uploads, tags, reads.
func TestDeletesHandOnOtherRequests(t *testing.T) {
	f := newDeletesFixture(t)
	d := digest.FromString("x").String()
	requests := []string{
		"DELETE /v2/ns/app/blobs/uploads/0d2fd3c0-8a4e-4e15-b5a5-1d0d1f5e0c5a",
		"DELETE /v2/ns/app/blobs/uploads",
		"DELETE /v2/ns/app/manifests/latest",
		"GET /v2/ns/app/blobs/" + d,
		"HEAD /v2/ns/app/manifests/" + d,
		"PUT /v2/ns/app/manifests/" + d,
		"DELETE /v2/",
		"DELETE /v2/ns/app/tags/list",
		"DELETE /admin/other",
	}
	for _, r := range requests {
		method, path, _ := strings.Cut(r, " ")
		if rec := f.do(method, path); rec.Code != http.StatusTeapot {
			t.Errorf("%s: answered %d here", r, rec.Code)
		}
	}
	if !reflect.DeepEqual(f.passed, requests) {
		t.Errorf("handed on:\n%v\nwant:\n%v", f.passed, requests)
	}
}

// Under http.prefix, the /v2 routes are the prefixed ones; /admin stays at the root.
func TestDeletesUnderPrefix(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base", "own")
	f.d.Prefix = "/registry/"
	if rec := f.do(http.MethodDelete, "/v2/ns/app/blobs/"+img.Layers[0].String()); rec.Code != http.StatusTeapot {
		t.Errorf("unprefixed: %d", rec.Code)
	}
	if rec := f.do(http.MethodDelete, "/registry/v2/ns/app/blobs/"+img.Layers[0].String()); rec.Code != 202 {
		t.Errorf("prefixed: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(http.MethodDelete, "/admin/blobs/"+img.Layers[1].String()); rec.Code != 204 {
		t.Errorf("admin: %d %s", rec.Code, rec.Body)
	}
}

// accessRecorder is an access controller that records what it is asked and answers err.
type accessRecorder struct {
	asked [][]auth.Access
	err   error
}

func (a *accessRecorder) Authorized(_ *http.Request, access ...auth.Access) (*auth.Grant, error) {
	a.asked = append(a.asked, access)
	if a.err != nil {
		return nil, a.err
	}
	return &auth.Grant{User: auth.UserInfo{Name: "pruner"}}, nil
}

type challenge struct{}

func (challenge) Error() string { return "no credentials" }

func (challenge) SetHeaders(_ *http.Request, w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="https://registry.example/openshift/token"`)
}

// The access check is asked first, with distribution's record for a DELETE on a repository and
// OpenShift's for the admin route; a refusal is answered and deletes nothing.
func TestDeletesAskTheAccessController(t *testing.T) {
	f := newDeletesFixture(t)
	img := f.reg.Image("ns/app", "latest", "app", "base", "own")
	paths := []string{
		"/v2/ns/app/blobs/" + img.Layers[0].String(),
		"/v2/ns/app/manifests/" + img.Manifest.String(),
		"/admin/blobs/" + img.Layers[1].String(),
	}
	wantAsked := [][]auth.Access{
		{{Resource: auth.Resource{Type: "repository", Name: "ns/app"}, Action: "delete"}},
		{{Resource: auth.Resource{Type: "repository", Name: "ns/app"}, Action: "delete"}},
		{{Resource: auth.Resource{Type: "admin"}, Action: "prune"}},
	}
	before := f.files()
	for _, tt := range []struct {
		err    error
		status int
		code   errcode.ErrorCode
	}{
		{challenge{}, http.StatusUnauthorized, errcode.ErrorCodeUnauthorized},
		{errcode.ErrorCodeDenied.WithDetail("may not delete images"), http.StatusForbidden, errcode.ErrorCodeDenied},
		{errcode.ErrorCodeUnavailable, http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable},
		{errors.New("the review failed"), http.StatusForbidden, errcode.ErrorCodeDenied},
	} {
		ac := &accessRecorder{err: tt.err}
		f.d.Access = ac
		for _, p := range paths {
			rec := f.do(http.MethodDelete, p)
			wantError(t, p+" refused with "+tt.err.Error(), rec, tt.status, tt.code)
			if _, ok := tt.err.(challenge); ok && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: no challenge header", p)
			}
		}
		if !reflect.DeepEqual(ac.asked, wantAsked) {
			t.Errorf("asked %v, want %v", ac.asked, wantAsked)
		}
	}
	if got := f.files(); !reflect.DeepEqual(got, before) {
		t.Errorf("refused requests changed storage:\n%v\nwant:\n%v", got, before)
	}

	f.d.Access = &accessRecorder{}
	for i, p := range paths {
		if rec := f.do(http.MethodDelete, p); rec.Code != []int{202, 202, 204}[i] {
			t.Errorf("granted %s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

// The in-memory cache forgets a deleted link at once, and everything after a blob goes (a
// blob is described under every repository that linked it).
func TestDeletesDropInMemoryCacheEntries(t *testing.T) {
	f := newDeletesFixture(t)
	ctx := context.Background()
	img := f.reg.Image("ns/app", "latest", "app", "base", "own")
	f.reg.Image("ns/other", "latest", "other", "base")
	base, own := img.Layers[0], img.Layers[1]
	cached := func(repo string, d digest.Digest) bool {
		var err error
		if repo == "" {
			_, err = f.memory.Stat(ctx, d)
		} else {
			svc, serr := f.memory.RepositoryScoped(repo)
			if serr != nil {
				t.Fatal(serr)
			}
			_, err = svc.Stat(ctx, d)
		}
		return err == nil
	}
	for _, repo := range []string{"ns/app", "ns/other"} {
		svc, err := f.memory.RepositoryScoped(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []digest.Digest{base, own} {
			desc := v1.Descriptor{Digest: d, Size: 10, MediaType: "application/octet-stream"}
			if err := svc.SetDescriptor(ctx, d, desc); err != nil {
				t.Fatal(err)
			}
		}
	}

	if rec := f.do(http.MethodDelete, "/v2/ns/app/blobs/"+base.String()); rec.Code != http.StatusAccepted {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if cached("ns/app", base) {
		t.Error("ns/app's entry of the deleted link is still cached")
	}
	if !cached("ns/other", base) || !cached("", base) || !cached("ns/app", own) {
		t.Error("entries of what stays were dropped")
	}

	if rec := f.do(http.MethodDelete, "/admin/blobs/"+own.String()); rec.Code != http.StatusNoContent {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if cached("", own) || cached("ns/app", own) || cached("ns/other", own) {
		t.Error("the deleted blob is still cached")
	}
}

type panickingRemover struct{}

func (panickingRemover) Delete(context.Context, prune.Object) error { panic("driver bug") }

func TestDeletesAnswerPanicsWith500(t *testing.T) {
	f := newDeletesFixture(t)
	f.d.Remover = panickingRemover{}
	wantError(t, "panic", f.do(http.MethodDelete, "/admin/blobs/"+digest.FromString("x").String()),
		http.StatusInternalServerError, errcode.ErrorCodeUnknown)
}
