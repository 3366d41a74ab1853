package access

import (
	"encoding/json"
	"errors"
	"net/http"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/gorilla/mux"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TokenPath is the token endpoint: where `docker login` goes after the challenge.
const TokenPath = "/openshift/token"

// Handler puts in front of distribution's app (next) what the controller needs there: the
// token endpoint; the response writer that lets a refusal answer with its own status (see
// Refusal); and cross-repository mounts the source of which the client may not pull, turned
// into plain uploads.
func (c *Controller) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == TokenPath {
			c.serveToken(w, r)
			return
		}
		r = c.withoutRefusedMount(r)
		g := &guard{}
		next.ServeHTTP(g.wrap(w), r.WithContext(withGuard(r.Context(), g)))
	})
}

// serveToken is OpenShift's token endpoint: it mints nothing. Without credentials it answers
// the token "anonymous"; with Basic credentials whose password is a token the cluster accepts,
// that same token; otherwise 401.
func (c *Controller) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		writeJSON(w, http.StatusOK, map[string]string{"token": AnonymousToken, "access_token": AnonymousToken})
		return
	}
	log := c.log.WithField("path", r.URL.Path)
	_, token, ok := r.BasicAuth()
	if !ok || !wellFormedToken(token) {
		log.Info("token request refused: no Basic credentials with a token as the password")
		w.Header().Set("WWW-Authenticate", c.basicChallenge(errMalformed).Challenge)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"details": errMalformed.Error()})
		return
	}
	user, err := c.whoAmI(r.Context(), token)
	switch {
	case err == nil:
		log.WithField("user", user).Debug("token request: the token is valid")
		writeJSON(w, http.StatusOK, map[string]string{"token": token, "access_token": token})
	case apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err):
		log.WithError(err).Info("token request refused: the cluster does not accept the token")
		w.Header().Set("WWW-Authenticate", c.basicChallenge(errAccessDenied).Challenge)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"details": errAccessDenied.Error()})
	default:
		log.WithError(err).Error("token request refused: the cluster did not review the token")
		writeJSON(w, http.StatusServiceUnavailable,
			map[string]string{"details": "the cluster did not review the token; try again"})
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// routes is distribution's router, only to name the route of a request before its app does.
var routes = v2.Router()

// withoutRefusedMount turns a cross-repository mount (POST .../blobs/uploads/?mount=<d>&from=<repo>)
// whose source the client may not pull into a plain upload, as OpenShift's registry does: the
// client gets 202 and uploads the blob, instead of a refusal that would fail its whole push,
// and learns nothing of the source. Distribution's app still asks pull on the source of the
// mounts left in place, so a refusal here is only ever the friendlier answer.
func (c *Controller) withoutRefusedMount(r *http.Request) *http.Request {
	if r.Method != http.MethodPost {
		return r
	}
	query := r.URL.Query()
	from := query.Get("from")
	var match mux.RouteMatch
	if from == "" || !routes.Match(r, &match) || match.Route.GetName() != v2.RouteNameBlobUpload {
		return r
	}
	pull := auth.Access{Resource: auth.Resource{Type: "repository", Name: from}, Action: "pull"}
	user, err := c.authorize(r, []auth.Access{pull})
	if err == nil {
		return r
	}
	var ref *Refusal
	if errors.As(err, &ref) {
		err = ref.Reason
	}
	c.log.WithFields(map[string]any{"user": user, "path": r.URL.Path, "from": from}).WithError(err).
		Info("cross-repository mount refused: the blob will be uploaded instead")
	query.Del("from")
	query.Del("mount")
	out := r.Clone(r.Context())
	out.URL.RawQuery = query.Encode()
	out.RequestURI = out.URL.RequestURI()
	return out
}
