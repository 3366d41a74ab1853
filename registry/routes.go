package registry

import (
	"net/http"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/health"
	distregistry "github.com/distribution/distribution/v3/registry"
	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/hardprune/image-registry/registry/access"
)

// HealthzPath is OpenShift's registry's health endpoint, which its deployment probes.
const HealthzPath = "/healthz"

// openshiftAccess is the openshift access controller of the registry Serve starts, nil
// without auth.openshift; front puts its handler in front of distribution's app.
var openshiftAccess *access.Controller

func init() {
	// Distribution has no hook for routes of its own beside its app's: a handler middleware
	// wraps the whole server, and is applied when the registry is built, after Serve has set
	// openshiftAccess.
	distregistry.RegisterHandler(func(_ *configuration.Configuration, next http.Handler) http.Handler {
		return front(next, openshiftAccess)
	})
}

// front serves, before distribution's app (next): /healthz, without credentials; and, with
// the openshift access controller, its token endpoint and writer (see access.Handler). GET /
// is distribution's own, also without credentials.
func front(next http.Handler, ac *access.Controller) http.Handler {
	if ac != nil {
		next = ac.Handler(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == HealthzPath {
			serveHealthz(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveHealthz answers 200, or 503 while one of distribution's health checks (the storage
// driver's, when health.storagedriver is enabled) fails.
func serveHealthz(w http.ResponseWriter, r *http.Request) {
	if failing := health.CheckStatus(r.Context()); len(failing) > 0 {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnavailable.WithDetail(failing))
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
}
