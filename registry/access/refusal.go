package access

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/felixge/httpsnoop"
)

// Refusal is a request the controller does not let through, with the answer it gets:
//   - 401 UNAUTHORIZED with a challenge: no credentials (a Bearer challenge naming the token
//     endpoint), or credentials the cluster does not accept (a Basic one, error="access denied");
//   - 403 DENIED: a valid identity without the permission;
//   - 400 NAME_INVALID: a repository name that is no image stream's, <namespace>/<name>;
//   - 503 UNAVAILABLE: the cluster did not answer the review in time, or failed it.
//
// It is distribution's auth.Challenge, so distribution's app sets the challenge header and
// answers 401 itself. Distribution answers every Challenge with 401; for the other statuses
// Handler's writer lets SetHeaders write the whole answer and drops the 401 that follows.
type Refusal struct {
	// Err is the registry's error body: its code gives the status.
	Err errcode.Error
	// Challenge is the WWW-Authenticate value, if any.
	Challenge string
	// Reason is why, for the log; clients get Err.
	Reason error
}

var _ auth.Challenge = (*Refusal)(nil)

func (e *Refusal) Error() string {
	if e.Reason != nil {
		return fmt.Sprintf("%s: %v", e.Err.Message, e.Reason)
	}
	return e.Err.Message
}

// Unwrap lets errors.Is find the reason.
func (e *Refusal) Unwrap() error { return e.Reason }

// Status is the HTTP status the refusal is answered with.
func (e *Refusal) Status() int { return e.Err.Code.Descriptor().HTTPStatusCode }

// SetHeaders implements auth.Challenge: the challenge header always; the whole answer for a
// status other than 401, when the request came through Handler.
func (e *Refusal) SetHeaders(r *http.Request, w http.ResponseWriter) {
	if e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	if e.Status() == http.StatusUnauthorized {
		return
	}
	if g, ok := r.Context().Value(guardKey{}).(*guard); ok {
		_ = errcode.ServeJSON(w, e.Err)
		g.sealed.Store(true)
	}
}

// WriteRefusal answers a request refused by AuthorizeAdmin (or any error): a *Refusal with its
// status, challenge and body; anything else as 503, which nothing should reach.
func WriteRefusal(w http.ResponseWriter, err error) {
	e, ok := err.(*Refusal)
	if !ok {
		e = &Refusal{Err: errcode.ErrorCodeUnavailable.WithDetail("authorization failed"), Reason: err}
	}
	if e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	_ = errcode.ServeJSON(w, e.Err)
}

type guardKey struct{}

// guard is the response writer Handler gives distribution's app: once a Refusal has written
// its answer, the app's own 401 and body go nowhere.
type guard struct {
	sealed atomic.Bool
}

// wrap returns w with the guard in front of it; httpsnoop keeps the writer's optional
// interfaces (io.ReaderFrom, http.Flusher, ...), so blobs are still sent the fast way.
func (g *guard) wrap(w http.ResponseWriter) http.ResponseWriter {
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				if !g.sealed.Load() {
					next(code)
				}
			}
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				if g.sealed.Load() {
					return len(b), nil
				}
				return next(b)
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				if g.sealed.Load() {
					return io.Copy(io.Discard, src)
				}
				return next(src)
			}
		},
	})
}

func withGuard(ctx context.Context, g *guard) context.Context {
	return context.WithValue(ctx, guardKey{}, g)
}
