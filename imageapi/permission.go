package imageapi

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// prunerRole is the ClusterRole that grants the ordinary prune everything it reads and writes.
const prunerRole = "system:image-pruner"

// PermissionError is an API server's refusal, said as the permission the pruner lacks and how
// to grant it. It unwraps to the API error (apierrors.IsForbidden holds).
type PermissionError struct {
	// What failed: "listing pods".
	What string
	// Verb and Resource name the missing permission as RBAC does: "list", "pods";
	// Namespace is where it is needed, empty for all namespaces or a cluster-scoped resource.
	Verb, Resource, Namespace string
	// ClusterScoped says Resource has no namespace (images).
	ClusterScoped bool
	Err           error
}

func (e *PermissionError) Error() string {
	where := " in all namespaces"
	switch {
	case e.ClusterScoped:
		where = ""
	case e.Namespace != "":
		where = " in namespace " + e.Namespace
	}
	return fmt.Sprintf(
		"%s: forbidden: the pruner needs %q on %s%s (bind the ClusterRole %s)",
		e.What,
		e.Verb,
		e.Resource,
		where,
		prunerRole,
	)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// requestError says what failed: a refusal as the permission it needs (see PermissionError),
// anything else wrapped with what was being done.
func requestError(err error, what, verb, resource, namespace string, clusterScoped bool) error {
	if apierrors.IsForbidden(err) {
		return &PermissionError{
			What:          what,
			Verb:          verb,
			Resource:      resource,
			Namespace:     namespace,
			ClusterScoped: clusterScoped,
			Err:           err,
		}
	}
	return fmt.Errorf("%s: %w", what, withRemedy(err))
}
