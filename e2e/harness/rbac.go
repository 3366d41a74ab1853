package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The roles of OpenShift's registry users, which the registry's access reviews ask about,
// and the registry's own.
const (
	ImagePullerRole = "system:image-puller"
	ImagePusherRole = "system:image-pusher"
	// RegistryRole is what the registry's service account needs to serve with auth: openshift.
	RegistryRole = "hardprune:image-registry"
)

// ImagePullerClusterRole is OpenShift's system:image-puller: pull from the image streams of
// the namespaces where it is bound.
func ImagePullerClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ImagePullerRole},
		Rules: []rbacv1.PolicyRule{{
			Verbs: []string{"get"}, APIGroups: []string{"image.openshift.io"}, Resources: []string{"imagestreams/layers"},
		}},
	}
}

// ImagePusherClusterRole is OpenShift's system:image-pusher: pull and push.
func ImagePusherClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ImagePusherRole},
		Rules: []rbacv1.PolicyRule{{
			Verbs:     []string{"get", "update"},
			APIGroups: []string{"image.openshift.io"},
			Resources: []string{"imagestreams/layers"},
		}},
	}
}

// RegistryClusterRole is what the registry's service account needs to serve with auth:
// openshift (the README's ClusterRole): review the anonymous user's requests
// (SubjectAccessReviews; the users' own reviews are made with their tokens), and record pushes
// (create Images, create and read ImageStreams, update their status). The hard prune needs
// system:image-pruner besides.
func RegistryClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: RegistryRole},
		Rules: []rbacv1.PolicyRule{
			{
				Verbs:     []string{"create"},
				APIGroups: []string{"authorization.k8s.io"},
				Resources: []string{"subjectaccessreviews"},
			},
			{Verbs: []string{"get", "create"}, APIGroups: []string{"image.openshift.io"}, Resources: []string{"images"}},
			{
				Verbs:     []string{"get", "create"},
				APIGroups: []string{"image.openshift.io"},
				Resources: []string{"imagestreams"},
			},
			{
				Verbs:     []string{"update"},
				APIGroups: []string{"image.openshift.io"},
				Resources: []string{"imagestreams/status"},
			},
		},
	}
}

// CreateClusterRole creates role, or updates the rules of the one of that name.
func (k *KubeAPIServer) CreateClusterRole(ctx context.Context, role *rbacv1.ClusterRole) error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	return createClusterRole(ctx, c, role)
}

func createClusterRole(ctx context.Context, c kubernetes.Interface, want *rbacv1.ClusterRole) error {
	roles := c.RbacV1().ClusterRoles()
	_, err := roles.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var have *rbacv1.ClusterRole
		if have, err = roles.Get(ctx, want.Name, metav1.GetOptions{}); err == nil {
			have.Rules = want.Rules
			_, err = roles.Update(ctx, have, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("creating cluster role %s: %w", want.Name, err)
	}
	return nil
}

// KubeGroup is an RBAC subject for a group (e.g. system:unauthenticated).
func KubeGroup(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

// BindClusterRoleInNamespace binds the ClusterRole role to subject in namespace only, with a
// RoleBinding, as `oc policy add-role-to-user <role> <subject> -n <namespace>` does.
func (k *KubeAPIServer) BindClusterRoleInNamespace(
	ctx context.Context,
	namespace, role string,
	subject rbacv1.Subject,
) error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	if err := createNamespace(ctx, c, namespace); err != nil {
		return err
	}
	name := strings.NewReplacer(":", "-", "/", "-").
		Replace(role + "-" + strings.ToLower(subject.Kind) + "-" + subject.Namespace + "-" + subject.Name)
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{subject},
	}
	_, err = c.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s to %s %s in %s: %w", role, subject.Kind, subject.Name, namespace, err)
	}
	return nil
}

// WaitForAccess polls SubjectAccessReviews until subject may do attrs: RBAC applies bindings
// a moment after they are created, and a test must not race it.
func (k *KubeAPIServer) WaitForAccess(
	ctx context.Context,
	subject rbacv1.Subject,
	attrs authorizationv1.ResourceAttributes,
) error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	if subject.Kind == rbacv1.GroupKind {
		return waitForSubjectAccess(ctx, c, authorizationv1.SubjectAccessReviewSpec{
			User: "system:anonymous", Groups: []string{subject.Name}, ResourceAttributes: &attrs,
		})
	}
	return waitForAccess(ctx, c, subjectUser(subject), attrs)
}

// waitForSubjectAccess is waitForAccess for any review spec.
func waitForSubjectAccess(
	ctx context.Context,
	c kubernetes.Interface,
	spec authorizationv1.SubjectAccessReviewSpec,
) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		sar := &authorizationv1.SubjectAccessReview{Spec: spec}
		res, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err == nil && res.Status.Allowed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %v still may not %+v: %w (last: %v)",
				spec.User, spec.Groups, *spec.ResourceAttributes, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
