// Package access is the registry's `openshift` access controller: every request is decided by
// the cluster, as OpenShift's registry decides it, and the registry holds no policy of its own.
//
// The token comes from `Authorization: Bearer <token>` or from the password of Basic
// credentials. The user is identified by a SelfSubjectReview made with that token, and each
// access distribution's app asks for is one SelfSubjectAccessReview made with it, in the API
// group image.openshift.io:
//
//	repository:<ns>/<name>:pull       get imagestreams/layers, namespace ns, name name
//	repository:<ns>/<name>:push       update imagestreams/layers
//	repository:<ns>/<name>:delete     update imagestreams/layers when it cancels an upload,
//	                                  else delete images (cluster-scoped)
//	registry:catalog:*                list imagestreams (cluster-scoped)
//	admin:prune (AuthorizeAdmin)      delete images (cluster-scoped)
//
// A request without credentials is reviewed as system:anonymous in system:unauthenticated, by
// a SubjectAccessReview made with the registry's own credentials, so that binding
// system:image-puller to that group opens a namespace to everyone.
//
// Decisions are kept for a few seconds per token and review; a review that fails or does not
// answer in time refuses the request (503), never lets it through.
package access

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/cache"
)

// Name is the access controller's name in the configuration: `auth: openshift: {}`.
const Name = "openshift"

// The image API group the reviews ask about.
const imageGroup = "image.openshift.io"

const (
	// DefaultReviewTimeout bounds each review: a cluster that does not answer in time refuses
	// the request.
	DefaultReviewTimeout = 10 * time.Second
	// DefaultDecisionTTL is how long an identity or a review's answer is reused for the same
	// token: a pull makes one request per layer, each asking the same question. A role granted
	// or taken away counts after at most this long.
	DefaultDecisionTTL = 5 * time.Second
	// DefaultRealm is the realm of Basic challenges, OpenShift's default.
	DefaultRealm = "origin"
	// cacheSize bounds the decisions kept.
	cacheSize = 10000
)

// Options configures New.
type Options struct {
	// Realm is the realm of Basic challenges (openshift.auth.realm); DefaultRealm if empty.
	Realm string
	// TokenRealm is the token endpoint challenges name (config.Auth.TokenRealmURL): absolute,
	// or a path whose scheme and host come from each request.
	TokenRealm *url.URL
	// Timeout bounds each review; DefaultReviewTimeout if zero.
	Timeout time.Duration
	// TTL is how long answers are reused; DefaultDecisionTTL if zero, none if negative.
	TTL time.Duration
	// Log receives refusals and failed reviews; logrus's standard logger if nil.
	Log logrus.FieldLogger
}

// Controller is the openshift access controller; see the package documentation.
type Controller struct {
	reviewer   Reviewer
	realm      string
	tokenRealm *url.URL
	timeout    time.Duration
	ttl        time.Duration
	log        logrus.FieldLogger
	answers    *cache.LRUExpireCache
	flight     singleflight.Group
}

var _ auth.AccessController = (*Controller)(nil)

// New returns a controller asking reviewer.
func New(reviewer Reviewer, opts Options) *Controller {
	c := &Controller{
		reviewer: reviewer, realm: opts.Realm, tokenRealm: opts.TokenRealm,
		timeout: opts.Timeout, ttl: opts.TTL, log: opts.Log,
		answers: cache.NewLRUExpireCache(cacheSize),
	}
	if c.realm == "" {
		c.realm = DefaultRealm
	}
	if c.tokenRealm == nil {
		c.tokenRealm = &url.URL{Path: "/openshift/token"}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultReviewTimeout
	}
	if c.ttl == 0 {
		c.ttl = DefaultDecisionTTL
	}
	if c.log == nil {
		c.log = logrus.StandardLogger()
	}
	return c
}

// Authorized implements distribution's auth.AccessController: a grant, or a *Refusal.
func (c *Controller) Authorized(r *http.Request, records ...auth.Access) (*auth.Grant, error) {
	user, err := c.authorize(r, records)
	if err != nil {
		c.logRefusal(r, user, records, err)
		return nil, err
	}
	grant := &auth.Grant{User: auth.UserInfo{Name: user}}
	for _, a := range records {
		grant.Resources = append(grant.Resources, a.Resource)
	}
	return grant, nil
}

// adminAccess is what OpenShift's registry asks for its admin endpoints.
var adminAccess = auth.Access{Resource: auth.Resource{Type: "admin"}, Action: "prune"}

// authorize decides records for r's credentials and returns the user's name.
func (c *Controller) authorize(r *http.Request, records []auth.Access) (string, error) {
	ctx := r.Context()
	cred, err := requestCredentials(r)
	if err != nil {
		return "", c.basicChallenge(err)
	}
	user := AnonymousUser
	switch {
	case cred.token != "":
		if user, err = c.whoAmI(ctx, cred.token); err != nil {
			return "", c.reviewFailed(r, cred, err)
		}
	case cred.none && len(records) == 0:
		// The base route without credentials: the challenge is how clients (docker login)
		// learn that this registry wants a token, and where to get one.
		return user, c.bearerChallenge(r, errors.New("authorization header required"))
	}
	for _, a := range records {
		attrs, err := attributes(r, a)
		if err != nil {
			return user, err
		}
		ok, reason, err := c.allowed(ctx, cred.token, attrs)
		if err != nil {
			return user, c.reviewFailed(r, cred, err)
		}
		if ok {
			continue
		}
		why := fmt.Errorf("%s may not %s (%s)", user, describe(attrs), orNone(reason))
		if cred.token == "" {
			// Credentials may get further: tell the client where to get them.
			return user, c.bearerChallenge(r, why)
		}
		return user, &Refusal{Err: errcode.ErrorCodeDenied.WithDetail(a), Reason: why}
	}
	return user, nil
}

// attributes is the review that decides a: see the package documentation.
func attributes(r *http.Request, a auth.Access) (authorizationv1.ResourceAttributes, error) {
	cluster := func(verb, resource string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: imageGroup, Resource: resource}
	}
	unsupported := &Refusal{
		Err:    errcode.ErrorCodeDenied.WithDetail(a),
		Reason: fmt.Errorf("unsupported access %s:%s:%s", a.Type, a.Name, a.Action),
	}
	switch a.Type {
	case "repository":
		namespace, name, ok := strings.Cut(a.Name, "/")
		if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
			return authorizationv1.ResourceAttributes{}, &Refusal{
				Err: errcode.ErrorCodeNameInvalid.WithDetail(
					fmt.Sprintf("repository %q: this registry serves image streams, <namespace>/<name>", a.Name)),
				Reason: fmt.Errorf("repository name %q is not <namespace>/<name>", a.Name),
			}
		}
		layers := func(verb string) authorizationv1.ResourceAttributes {
			return authorizationv1.ResourceAttributes{
				Namespace: namespace, Name: name, Verb: verb,
				Group: imageGroup, Resource: "imagestreams", Subresource: "layers",
			}
		}
		switch a.Action {
		case "pull":
			return layers("get"), nil
		case "push":
			return layers("update"), nil
		case "delete":
			if cancelsUpload(r) {
				return layers("update"), nil
			}
			return cluster("delete", "images"), nil
		}
	case "registry":
		if a.Name == "catalog" && a.Action == "*" {
			return cluster("list", "imagestreams"), nil
		}
	case adminAccess.Type:
		if a.Action == adminAccess.Action {
			return cluster("delete", "images"), nil
		}
	}
	return authorizationv1.ResourceAttributes{}, unsupported
}

// cancelsUpload tells whether r is the DELETE of an upload, by the route distribution's router
// matched: a path test could take a repository named like ".../blobs/uploads/x" for one.
func cancelsUpload(r *http.Request) bool {
	route := mux.CurrentRoute(r)
	return r.Method == http.MethodDelete && route != nil && route.GetName() == v2.RouteNameBlobUploadChunk
}

// describe says what a review asks, for logs: "get imagestreams/layers ns/name".
func describe(a authorizationv1.ResourceAttributes) string {
	s := a.Verb + " " + a.Resource
	if a.Subresource != "" {
		s += "/" + a.Subresource
	}
	s += "." + a.Group
	if a.Namespace != "" {
		s += " " + a.Namespace + "/" + a.Name
	} else {
		s += " (cluster-scoped)"
	}
	return s
}

func orNone(reason string) string {
	if reason == "" {
		return "no rule allows it"
	}
	return reason
}

// bearerChallenge asks for credentials and names the token endpoint: openshift.auth.tokenrealm,
// or this registry's own, at the scheme and host the client used.
func (c *Controller) bearerChallenge(r *http.Request, why error) *Refusal {
	realm := *c.tokenRealm
	if realm.Scheme == "" || realm.Host == "" {
		realm.Scheme, realm.Host = schemeHost(r)
	}
	return &Refusal{
		Err:       errcode.ErrorCodeUnauthorized.WithDetail("authentication required"),
		Challenge: fmt.Sprintf("Bearer realm=%q", realm.String()),
		Reason:    why,
	}
}

// basicChallenge refuses credentials: err's text is the challenge's error, as OpenShift's
// registry words it ("access denied", "failed to decode credentials").
func (c *Controller) basicChallenge(err error) *Refusal {
	return &Refusal{
		Err:       errcode.ErrorCodeUnauthorized.WithDetail(err.Error()),
		Challenge: fmt.Sprintf("Basic realm=%q,error=%q", c.realm, err.Error()),
		Reason:    err,
	}
}

var errAccessDenied = errors.New("access denied")

// reviewFailed is the answer to a review that did not decide: the cluster refused the token
// (401), or the user may not even ask (403), or the cluster failed or did not answer (503).
func (c *Controller) reviewFailed(r *http.Request, cred credentials, err error) *Refusal {
	switch {
	case cred.token == "" && (apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err)):
		// The registry's own credentials may not review the anonymous user: an installation
		// problem, logged as such; the client can still log in.
		c.log.WithError(err).Error("the registry may not create subjectaccessreviews, so requests without " +
			"credentials are refused: grant its service account the role in the README")
		return c.bearerChallenge(r, fmt.Errorf("reviewing the anonymous user: %w", err))
	case apierrors.IsUnauthorized(err):
		ch := c.basicChallenge(errAccessDenied)
		ch.Reason = fmt.Errorf("the cluster refused the token: %w", err)
		return ch
	case apierrors.IsForbidden(err):
		return &Refusal{
			Err:    errcode.ErrorCodeDenied.WithDetail("the cluster does not let this user review its access"),
			Reason: fmt.Errorf("the review was forbidden: %w", err),
		}
	}
	return &Refusal{
		Err:    errcode.ErrorCodeUnavailable.WithDetail("the cluster did not decide the access review; try again"),
		Reason: fmt.Errorf("access review failed: %w", err),
	}
}

// schemeHost is how the client reached the registry, a proxy's X-Forwarded-* headers included.
func schemeHost(r *http.Request) (string, string) {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		scheme = p
	}
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
		host = h
	}
	return scheme, host
}

func firstValue(header string) string {
	v, _, _ := strings.Cut(header, ",")
	return strings.TrimSpace(v)
}

// identity is a WhoAmI answer kept in the cache: a name, or the cluster's refusal of the token.
type identity struct {
	name string
	err  error
}

// verdict is a review's answer kept in the cache.
type verdict struct {
	ok     bool
	reason string
}

// whoAmI identifies token's user, from the cache when it can.
func (c *Controller) whoAmI(ctx context.Context, token string) (string, error) {
	v, err := c.ask(ctx, "user\x00"+tokenDigest(token), func(ctx context.Context) (any, error) {
		name, err := c.reviewer.WhoAmI(ctx, token)
		if apierrors.IsUnauthorized(err) {
			// A refused token is an answer too: kept, so that a client retrying a bad token
			// does not reach the cluster each time.
			return identity{err: err}, nil
		}
		return identity{name: name}, err
	})
	if err != nil {
		return "", err
	}
	id := v.(identity)
	return id.name, id.err
}

// allowed decides one review, from the cache when it can.
func (c *Controller) allowed(
	ctx context.Context,
	token string,
	a authorizationv1.ResourceAttributes,
) (bool, string, error) {
	key := strings.Join([]string{"review", tokenDigest(token), a.Verb, a.Group, a.Resource, a.Subresource,
		a.Namespace, a.Name}, "\x00")
	v, err := c.ask(ctx, key, func(ctx context.Context) (any, error) {
		ok, reason, err := c.reviewer.Allowed(ctx, token, a)
		return verdict{ok: ok, reason: reason}, err
	})
	if err != nil {
		return false, "", err
	}
	d := v.(verdict)
	return d.ok, d.reason, nil
}

// ask answers key from the cache, or by one call of review that concurrent askers share; only
// answers are kept, errors are not. The call is bounded by the timeout and outlives the
// request that started it, so a client hanging up does not fail the others waiting for it.
func (c *Controller) ask(ctx context.Context, key string, review func(context.Context) (any, error)) (any, error) {
	if v, ok := c.answers.Get(key); ok {
		return v, nil
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		v, err := review(rctx)
		if err == nil && c.ttl > 0 {
			c.answers.Add(key, v, c.ttl)
		}
		return v, err
	})
	select {
	case res := <-ch:
		return res.Val, res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// tokenDigest stands for a token in cache keys, so that the cache holds no tokens.
func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}

// logRefusal logs a refused request: failed reviews as errors, refusals at info level.
func (c *Controller) logRefusal(r *http.Request, user string, records []auth.Access, err error) {
	fields := logrus.Fields{"method": r.Method, "path": r.URL.Path, "access": records}
	if user != "" {
		fields["user"] = user
	}
	var ref *Refusal
	if errors.As(err, &ref) {
		fields["status"] = ref.Status()
		if ref.Status() == http.StatusServiceUnavailable {
			c.log.WithFields(fields).WithError(ref.Reason).Error("request refused: the access review failed")
			return
		}
	}
	c.log.WithFields(fields).WithError(err).Info("request refused")
}

// installed is the controller distribution's app gets for `auth: openshift`, and the policy of
// the endpoints outside distribution's app.
var installed atomic.Pointer[setup]

type setup struct {
	controller *Controller
	open       bool
}

// Setup says how requests are authorized, before distribution's app starts: by c, the
// openshift access controller, when the configuration names auth.openshift. With c nil, open
// says the configuration names no access controller at all (distribution then lets every
// request through, and AuthorizeAdmin does too); not open, it names another of
// distribution's, which AuthorizeAdmin cannot ask, so it refuses.
func Setup(c *Controller, open bool) {
	installed.Store(&setup{controller: c, open: open})
}

// AuthorizeAdmin decides a request to the registry's admin endpoints (DELETE
// /admin/blobs/<digest>), which distribution's app does not serve and so does not authorize:
// cluster-scoped `delete images` for the request's credentials, as OpenShift's registry asks.
// nil lets the request through; an error (a *Refusal) is answered with WriteRefusal. ctx
// bounds the reviews. Without the openshift access controller see Setup; before Setup,
// everything is refused.
func AuthorizeAdmin(ctx context.Context, r *http.Request) error {
	s := installed.Load()
	switch {
	case s == nil || (s.controller == nil && !s.open):
		return &Refusal{
			Err:    errcode.ErrorCodeDenied.WithDetail("the admin endpoints need auth: openshift"),
			Reason: errors.New("no openshift access controller to authorize the admin endpoint"),
		}
	case s.controller == nil:
		return nil
	}
	records := []auth.Access{adminAccess}
	_, err := s.controller.Authorized(r.WithContext(ctx), records...)
	return err
}

func init() {
	err := auth.Register(Name, func(map[string]any) (auth.AccessController, error) {
		if s := installed.Load(); s != nil && s.controller != nil {
			return s.controller, nil
		}
		return nil, errors.New("the openshift access controller asks the cluster with the registry's " +
			"credentials, which only the registry's serve mode sets up")
	})
	if err != nil {
		panic(err)
	}
}
