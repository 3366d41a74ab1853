package access

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

// kubeReviews is an API server that answers the three reviews and records what it was sent.
type kubeReviews struct {
	mu       sync.Mutex
	requests []seenReview
}

type seenReview struct {
	path, authorization string
	spec                json.RawMessage
}

func (k *kubeReviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Spec json.RawMessage `json:"spec"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	k.mu.Lock()
	k.requests = append(k.requests, seenReview{r.URL.Path, r.Header.Get("Authorization"), body.Spec})
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") == "Bearer expired" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`))
		return
	}
	switch r.URL.Path {
	case "/apis/authentication.k8s.io/v1/selfsubjectreviews":
		_ = json.NewEncoder(w).Encode(authenticationv1.SelfSubjectReview{
			Status: authenticationv1.SelfSubjectReviewStatus{UserInfo: authenticationv1.UserInfo{Username: "alice"}},
		})
	case "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
		_ = json.NewEncoder(w).Encode(authorizationv1.SelfSubjectAccessReview{
			Status: authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "bound"},
		})
	case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
		_ = json.NewEncoder(w).Encode(authorizationv1.SubjectAccessReview{
			Status: authorizationv1.SubjectAccessReviewStatus{Allowed: false},
		})
	default:
		http.NotFound(w, r)
	}
}

// The user's reviews carry the user's token and nothing of the registry's; the anonymous
// review is the registry's, for system:anonymous in system:unauthenticated.
func TestClusterReviewer(t *testing.T) {
	kube := &kubeReviews{}
	srv := httptest.NewTLSServer(kube)
	defer srv.Close()
	r, err := NewClusterReviewer(&rest.Config{
		Host: srv.URL, BearerToken: "registry-token", TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		// JSON, for this server to read the reviews; client-go sends protobuf by default.
		ContentConfig: rest.ContentConfig{ContentType: "application/json"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if user, err := r.WhoAmI(ctx, "user-token"); err != nil || user != "alice" {
		t.Errorf("WhoAmI: %q, %v", user, err)
	}
	if _, err := r.WhoAmI(ctx, "expired"); !apierrors.IsUnauthorized(err) {
		t.Errorf("WhoAmI of a refused token: %v, want an Unauthorized error", err)
	}
	pull := authorizationv1.ResourceAttributes{
		Namespace: "ns", Name: "app", Verb: "get", Group: imageGroup, Resource: "imagestreams", Subresource: "layers",
	}
	if ok, reason, err := r.Allowed(ctx, "user-token", pull); err != nil || !ok || reason != "bound" {
		t.Errorf("Allowed: %v %q %v", ok, reason, err)
	}
	if ok, _, err := r.Allowed(ctx, "", pull); err != nil || ok {
		t.Errorf("Allowed for anonymous: %v %v", ok, err)
	}

	want := []struct{ path, authorization, spec string }{
		{"/apis/authentication.k8s.io/v1/selfsubjectreviews", "Bearer user-token", ""},
		{"/apis/authentication.k8s.io/v1/selfsubjectreviews", "Bearer expired", ""},
		{"/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "Bearer user-token",
			`{"resourceAttributes":{"namespace":"ns","verb":"get","group":"image.openshift.io",` +
				`"resource":"imagestreams","subresource":"layers","name":"app"}}`},
		{"/apis/authorization.k8s.io/v1/subjectaccessreviews", "Bearer registry-token",
			`{"resourceAttributes":{"namespace":"ns","verb":"get","group":"image.openshift.io",` +
				`"resource":"imagestreams","subresource":"layers","name":"app"},` +
				`"user":"system:anonymous","groups":["system:unauthenticated"]}`},
	}
	if len(kube.requests) != len(want) {
		t.Fatalf("requests %+v", kube.requests)
	}
	for i, w := range want {
		got := kube.requests[i]
		if got.path != w.path || got.authorization != w.authorization || (w.spec != "" && string(got.spec) != w.spec) {
			t.Errorf("request %d: %s %q %s\nwant %s %q %s", i, got.path, got.authorization, got.spec,
				w.path, w.authorization, w.spec)
		}
	}
}
