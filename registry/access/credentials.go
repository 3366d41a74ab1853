package access

import (
	"errors"
	"net/http"
	"strings"
)

// AnonymousToken is the token /openshift/token hands out to a request without credentials;
// `Authorization: Bearer anonymous` means no credentials, as in OpenShift's registry.
const AnonymousToken = "anonymous"

// credentials is what a request's Authorization header says about who sends it.
type credentials struct {
	// token is the bearer token to act with; empty for the anonymous user.
	token string
	// none says the request had no Authorization header at all; a client that sent `Bearer
	// anonymous` has been through the token endpoint and knows where to log in.
	none bool
}

// errMalformed is an Authorization header that names credentials this registry cannot read.
var errMalformed = errors.New("failed to decode credentials")

// requestCredentials reads the token from `Authorization: Bearer <token>` or from the password
// of Basic credentials (what `docker login -u any -p <token>` and `oc adm prune images` send;
// the user name is ignored). A header of another scheme, Basic credentials that do not decode
// or carry no password, and tokens with characters no token has are errMalformed: such a
// request is refused, never served as the anonymous user's.
func requestCredentials(r *http.Request) (credentials, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return credentials{none: true}, nil
	}
	scheme, rest, _ := strings.Cut(header, " ")
	var token string
	switch strings.ToLower(scheme) {
	case "bearer":
		token = strings.TrimSpace(rest)
		if token == AnonymousToken {
			return credentials{}, nil
		}
	case "basic":
		_, password, ok := r.BasicAuth()
		if !ok {
			return credentials{}, errMalformed
		}
		token = password
	default:
		return credentials{}, errMalformed
	}
	if !wellFormedToken(token) {
		return credentials{}, errMalformed
	}
	return credentials{token: token}, nil
}

// wellFormedToken tells whether t could be a token: not empty, printable ASCII without spaces.
// Anything else would fail as an HTTP header on the way to the cluster, and be taken for the
// cluster not answering instead of for a bad token.
func wellFormedToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return false
		}
	}
	return true
}
