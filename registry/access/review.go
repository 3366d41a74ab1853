package access

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Anonymous is who a request without credentials is reviewed as, with AnonymousGroup: binding
// a role to that group (e.g. system:image-puller in a namespace) opens it to everyone.
const (
	AnonymousUser  = "system:anonymous"
	AnonymousGroup = "system:unauthenticated"
)

// Reviewer asks the cluster. The controller declares what it needs; ClusterReviewer is the
// real one, tests bring fakes.
type Reviewer interface {
	// WhoAmI returns the user name token authenticates as (a SelfSubjectReview made as that
	// user). An API error of status 401 means the token is not valid there.
	WhoAmI(ctx context.Context, token string) (string, error)
	// Allowed tells whether the user of token may do what attrs describe: a
	// SelfSubjectAccessReview made as that user or, for the empty token, a SubjectAccessReview
	// for the anonymous user made with the registry's own credentials. reason is the
	// authorizer's, for the log.
	Allowed(
		ctx context.Context,
		token string,
		attrs authorizationv1.ResourceAttributes,
	) (ok bool, reason string, err error)
}

// ClusterReviewer makes the reviews against the API server of the registry's kubeconfig:
// the user's with the user's token instead of the registry's credentials, the anonymous one
// with the registry's.
type ClusterReviewer struct {
	// asUser carries no credentials of its own: each request sets the user's token.
	asUser   kubernetes.Interface
	registry kubernetes.Interface
}

// Client-side rate limits of the review clients: above client-go's defaults (5 per second),
// which a registry's burst of first pulls would queue behind; the cache keeps the steady rate
// far lower.
const (
	reviewQPS   = 100
	reviewBurst = 200
)

// NewClusterReviewer builds the review clients from the registry's REST configuration.
func NewClusterReviewer(cfg *rest.Config) (*ClusterReviewer, error) {
	registryCfg := rest.CopyConfig(cfg)
	registryCfg.QPS, registryCfg.Burst = reviewQPS, reviewBurst
	registry, err := kubernetes.NewForConfig(registryCfg)
	if err != nil {
		return nil, fmt.Errorf("the access review client: %w", err)
	}
	// No token, no client certificate, no impersonation: what reaches the API server as the
	// user is the user's token alone, never the registry's identity.
	userCfg := rest.AnonymousClientConfig(cfg)
	userCfg.QPS, userCfg.Burst = reviewQPS, reviewBurst
	asUser, err := kubernetes.NewForConfig(userCfg)
	if err != nil {
		return nil, fmt.Errorf("the access review client: %w", err)
	}
	return &ClusterReviewer{asUser: asUser, registry: registry}, nil
}

// WhoAmI implements Reviewer.
func (c *ClusterReviewer) WhoAmI(ctx context.Context, token string) (string, error) {
	var res authenticationv1.SelfSubjectReview
	err := c.asUser.AuthenticationV1().RESTClient().Post().
		Resource("selfsubjectreviews").
		SetHeader("Authorization", "Bearer "+token).
		Body(&authenticationv1.SelfSubjectReview{}).
		Do(ctx).Into(&res)
	if err != nil {
		return "", err
	}
	return res.Status.UserInfo.Username, nil
}

// Allowed implements Reviewer.
func (c *ClusterReviewer) Allowed(
	ctx context.Context,
	token string,
	attrs authorizationv1.ResourceAttributes,
) (bool, string, error) {
	if token == "" {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: AnonymousUser, Groups: []string{AnonymousGroup}, ResourceAttributes: &attrs,
		}}
		res, err := c.registry.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			return false, "", err
		}
		return res.Status.Allowed, res.Status.Reason, nil
	}
	var res authorizationv1.SelfSubjectAccessReview
	err := c.asUser.AuthorizationV1().RESTClient().Post().
		Resource("selfsubjectaccessreviews").
		SetHeader("Authorization", "Bearer "+token).
		Body(&authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
		}).
		Do(ctx).Into(&res)
	if err != nil {
		return false, "", err
	}
	return res.Status.Allowed, res.Status.Reason, nil
}
