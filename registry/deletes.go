package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/opencontainers/go-digest"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/registry/access"
	"github.com/hardprune/image-registry/storage"
)

// Deletes serves the registry calls `oc adm prune images --confirm` makes, with the answers
// OpenShift's registry gives them:
//
//	DELETE /v2/<name>/blobs/<digest>       the layer link of <name>: 202; 404 BLOB_UNKNOWN when absent
//	DELETE /v2/<name>/manifests/<digest>   the revision link of <name>, and the tags that name
//	                                       the manifest: 202; 404 MANIFEST_UNKNOWN when absent;
//	                                       405 UNSUPPORTED while <name>'s image stream names it
//	DELETE /admin/blobs/<digest>           the blob: 204, also when already absent
//
// The first two need storage.delete.enabled (405 UNSUPPORTED otherwise, as in distribution);
// all three are refused (405 UNSUPPORTED) while the registry is read-only, which OpenShift's
// registry does not do for the blob: a hard prune may be running, and it relies on the
// registry not changing storage under it. Nothing here checks that a blob is unused before it
// goes: that is the pruner's decision, made from the image API, as upstream.
//
// Distribution's app has no place for extra routes, and its own blob and manifest deletes know
// nothing of image streams nor of the cache invalidation a deletion needs, so Deletes sits in
// front of the app (Wrap) and answers these requests itself; every other request, a DELETE of
// an upload or of a tag included, goes on to the app.
type Deletes struct {
	// Store holds the links and blobs; its paths are the only ones used here.
	Store *storage.Store
	// Remover deletes, usually Store wrapped by cache.Serving so that no blob descriptor cache
	// describes what went.
	Remover prune.Remover
	// Streams reads the image streams whose tag histories protect manifests.
	Streams imageclient.ImageStreamsGetter
	// Access, when set, decides every well-formed request (a valid name and digest) before the
	// modes, storage or the image API are looked at: the access controller the configuration's
	// auth section names, as distribution's app uses for its own routes. The records asked are distribution's for a DELETE on a
	// repository (repository:<name>:delete) and OpenShift's for the admin route (admin:prune);
	// the openshift access controller grants both to cluster-scoped `delete images` only.
	// Nil lets every request through, as the app does without an auth section.
	Access auth.AccessController
	// DeleteEnabled is storage.delete.enabled; ReadOnly is storage.maintenance.readonly.enabled.
	DeleteEnabled, ReadOnly bool
	// Prefix is http.prefix, under which the /v2 routes are served (not /admin, as upstream).
	Prefix string
	Log    logrus.FieldLogger
}

// The timeouts of one call: storage work is not cut short by a client that goes away (a
// deletion under way completes, with its cache invalidation), only by storageTimeout.
const (
	storageTimeout = 2 * time.Minute
	streamTimeout  = 30 * time.Second
)

// Wrap returns a handler that serves the delete calls and hands every other request to next.
func (d *Deletes) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := d.match(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		d.serve(w, r, c)
	})
}

// call is one request Deletes serves, as its path gives it, not validated yet.
type call struct {
	kind prune.Kind // KindLayerLink, KindManifestLink or KindBlob
	repo string     // for links
	ref  string     // the digest
	v2   bool       // under /v2/: the answer carries distribution's API version header
}

// access is what the access controller is asked for the call.
func (c call) access() []auth.Access {
	if c.kind == prune.KindBlob {
		return []auth.Access{{Resource: auth.Resource{Type: "admin"}, Action: "prune"}}
	}
	return []auth.Access{{Resource: auth.Resource{Type: "repository", Name: c.repo}, Action: "delete"}}
}

// match tells whether Deletes serves r. Under /v2/ a path is read as distribution's router
// reads it, the last two components naming the route and the rest the repository, but more
// widely: a DELETE that distribution's patterns would turn away with a bare 404 (a malformed
// digest, an invalid name) is served here, to be answered 400 with the registry's error body.
// Every method under /admin/blobs/ is served (all but DELETE are 405).
func (d *Deletes) match(r *http.Request) (call, bool) {
	p := r.URL.Path
	if ref, ok := strings.CutPrefix(p, "/admin/blobs/"); ok {
		return call{kind: prune.KindBlob, ref: ref}, true
	}
	if r.Method != http.MethodDelete {
		return call{}, false
	}
	rest, ok := strings.CutPrefix(p, strings.TrimSuffix(d.Prefix, "/")+"/v2/")
	if !ok {
		return call{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return call{}, false
	}
	route, ref := parts[len(parts)-2], parts[len(parts)-1]
	repo := strings.Join(parts[:len(parts)-2], "/")
	switch {
	case route == "blobs" && ref != "" && ref != "uploads":
		return call{kind: prune.KindLayerLink, repo: repo, ref: ref, v2: true}, true
	case route == "manifests" && strings.Contains(ref, ":"):
		// Without a colon it is a tag, which distribution untags.
		return call{kind: prune.KindManifestLink, repo: repo, ref: ref, v2: true}, true
	}
	return call{}, false
}

// outcome is what one call did, for its log line.
type outcome struct {
	user    string
	deleted []prune.Object
	err     error // the failure behind a 5xx, or why access was refused
}

// serve answers one call and logs it, one line, with the fields distribution's own request
// lines have. A panic is answered 500 and logged, not passed on: distribution's recovery sits
// inside the app, behind this handler.
func (d *Deletes) serve(w http.ResponseWriter, r *http.Request, c call) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	var out outcome
	defer func() {
		if p := recover(); p != nil {
			out.err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			if rec.status == 0 {
				serveError(rec, errcode.ErrorCodeUnknown)
			}
		}
		d.logCall(r, c, rec.status, time.Since(start), out)
	}()
	if c.v2 {
		rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	}
	d.handle(rec, r, c, &out)
}

func (d *Deletes) handle(w http.ResponseWriter, r *http.Request, c call, out *outcome) {
	if r.Method != http.MethodDelete {
		w.Header().Set("Allow", http.MethodDelete)
		serveError(w, errcode.ErrorCodeUnsupported.WithDetail("only DELETE is served under /admin/blobs/"))
		return
	}
	if c.kind != prune.KindBlob {
		if err := storage.ValidateRepositoryName(c.repo); err != nil {
			serveError(w, errcode.ErrorCodeNameInvalid.WithDetail(err.Error()))
			return
		}
	}
	dgst, err := digest.Parse(c.ref)
	if err != nil {
		serveError(w, errcode.ErrorCodeDigestInvalid.WithDetail(fmt.Sprintf("%q: %v", c.ref, err)))
		return
	}
	if !d.authorize(w, r, c, out) {
		return
	}
	switch {
	case d.ReadOnly:
		serveError(w, errcode.ErrorCodeUnsupported.WithDetail(
			"the registry is read-only (storage.maintenance.readonly): nothing is deleted"))
		return
	case !d.DeleteEnabled && c.kind != prune.KindBlob:
		serveError(w, errcode.ErrorCodeUnsupported.WithDetail("deletes are disabled (storage.delete.enabled)"))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storageTimeout)
	defer cancel()
	del := func(o prune.Object) bool {
		if err := d.Remover.Delete(ctx, o); err != nil {
			d.fail(w, out, errcode.ErrorCodeUnknown, fmt.Errorf("deleting %s: %w", o, err))
			return false
		}
		out.deleted = append(out.deleted, o)
		return true
	}
	switch c.kind {
	case prune.KindLayerLink:
		link := prune.Object{Kind: prune.KindLayerLink, Repository: c.repo, Digest: dgst}
		if found, ok := d.stored(ctx, w, out, link); !ok || !found {
			if ok {
				serveError(w, errcode.ErrorCodeBlobUnknown)
			}
			return
		}
		if del(link) {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusAccepted)
		}
	case prune.KindManifestLink:
		d.deleteManifest(ctx, w, out, c.repo, dgst, del)
	case prune.KindBlob:
		if del(prune.Object{Kind: prune.KindBlob, Digest: dgst}) {
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// deleteManifest removes a manifest from a repository: the tags that point at it, its entries
// in the other tags' indexes, then its revision link. Distribution's own delete also untags;
// the index entries go too, so that no tag of the repository names the manifest any more and
// a hard prune finds nothing of it to remove. The link goes last: a call that fails half way,
// sent again, finds the link and finishes.
func (d *Deletes) deleteManifest(
	ctx context.Context,
	w http.ResponseWriter,
	out *outcome,
	repo string,
	dgst digest.Digest,
	del func(prune.Object) bool,
) {
	tags, err := d.historyNaming(ctx, repo, dgst)
	if err != nil {
		d.fail(w, out, errcode.ErrorCodeUnavailable, err)
		return
	}
	if len(tags) > 0 {
		// OpenShift serves a manifest its stream names even without the link, so deleting the
		// link would change nothing that pulls see; and the hard prune counts the link as
		// used. Upstream answers the same, with no detail.
		serveError(w, errcode.ErrorCodeUnsupported.WithDetail(fmt.Sprintf(
			"the image stream %s still names %s (tags %s): remove it from the tag history first",
			repo, dgst, strings.Join(tags, ", "))))
		return
	}
	link := prune.Object{Kind: prune.KindManifestLink, Repository: repo, Digest: dgst}
	if found, ok := d.stored(ctx, w, out, link); !ok || !found {
		if ok {
			serveError(w, errcode.ErrorCodeManifestUnknown)
		}
		return
	}
	current, indexed, err := d.Store.TagsNaming(ctx, repo, dgst)
	if err != nil {
		d.fail(w, out, errcode.ErrorCodeUnknown, err)
		return
	}
	for _, tag := range current {
		if !del(prune.Object{Kind: prune.KindTag, Repository: repo, Name: tag, Digest: dgst}) {
			return
		}
	}
	for _, tag := range indexed {
		if !del(prune.Object{Kind: prune.KindTagIndexEntry, Repository: repo, Name: tag, Digest: dgst}) {
			return
		}
	}
	if del(link) {
		w.WriteHeader(http.StatusAccepted)
	}
}

// historyNaming returns the tags of repo's image stream whose history names dgst; none when
// repo has no stream (only <namespace>/<name> repositories can have one). An image API that
// cannot say is an error: the link then stays.
func (d *Deletes) historyNaming(ctx context.Context, repo string, dgst digest.Digest) ([]string, error) {
	namespace, name, err := splitRepository(repo)
	if err != nil {
		return nil, nil
	}
	if d.Streams == nil {
		return nil, errors.New("no image API client to read image streams with")
	}
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	is, err := d.Streams.ImageStreams(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading image stream %s, whose tag history may name %s: %w", repo, dgst, err)
	}
	var tags []string
	for _, t := range is.Status.Tags {
		for _, item := range t.Items {
			if item.Image == dgst.String() {
				tags = append(tags, t.Tag)
				break
			}
		}
	}
	return tags, nil
}

// stored tells whether o is in storage; ok is false when storage could not say, and the
// answer is then written.
func (d *Deletes) stored(
	ctx context.Context,
	w http.ResponseWriter,
	out *outcome,
	o prune.Object,
) (found, ok bool) {
	found, err := d.Store.Stored(ctx, o)
	if err != nil {
		d.fail(w, out, errcode.ErrorCodeUnknown, fmt.Errorf("looking for %s: %w", o, err))
		return false, false
	}
	return found, true
}

// authorize asks the access controller, if any, and answers a refusal as distribution's app
// does: a challenge is 401 UNAUTHORIZED with its WWW-Authenticate header. An error the
// controller gives as the registry's own (403 DENIED, 503 UNAVAILABLE when it could not
// decide) is answered as it is; any other error is 403 DENIED, never a request let through.
func (d *Deletes) authorize(w http.ResponseWriter, r *http.Request, c call, out *outcome) bool {
	if d.Access == nil {
		return true
	}
	records := c.access()
	grant, err := d.Access.Authorized(r, records...)
	if err == nil && grant != nil {
		out.user = grant.User.Name
		return true
	}
	if err == nil {
		err = errors.New("the access controller returned neither a grant nor an error")
	}
	out.err = err
	var refusal *access.Refusal
	var challenge auth.Challenge
	var coded codedError
	switch {
	case errors.As(err, &refusal):
		// The openshift controller's: its own status (401, 403, 503), challenge and body.
		access.WriteRefusal(w, refusal)
	case errors.As(err, &challenge):
		challenge.SetHeaders(r, w)
		serveError(w, errcode.ErrorCodeUnauthorized.WithDetail(records))
	case errors.As(err, &coded):
		serveError(w, coded)
	default:
		serveError(w, errcode.ErrorCodeDenied)
	}
	return false
}

// codedError is an error with the registry's error code (errcode.Error, errcode.ErrorCode).
type codedError interface {
	error
	ErrorCode() errcode.ErrorCode
}

// fail answers a failure the client did not cause, with its cause as the detail.
func (d *Deletes) fail(w http.ResponseWriter, out *outcome, code errcode.ErrorCode, err error) {
	out.err = err
	serveError(w, code.WithDetail(err.Error()))
}

func serveError(w http.ResponseWriter, err error) {
	_ = errcode.ServeJSON(w, err)
}

func (d *Deletes) logCall(r *http.Request, c call, status int, took time.Duration, out outcome) {
	log := d.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	fields := logrus.Fields{
		"http.request.method":     r.Method,
		"http.request.uri":        r.RequestURI,
		"http.request.remoteaddr": r.RemoteAddr,
		"http.request.useragent":  r.UserAgent(),
		"http.response.status":    status,
		"http.response.duration":  took.String(),
		"vars.digest":             c.ref,
	}
	if c.repo != "" {
		fields["vars.name"] = c.repo
	}
	if out.user != "" {
		fields["auth.user.name"] = out.user
	}
	if len(out.deleted) > 0 {
		names := make([]string, len(out.deleted))
		for i, o := range out.deleted {
			names[i] = o.String()
		}
		fields["deleted"] = strings.Join(names, ", ")
	}
	entry := log.WithFields(fields)
	switch {
	case status >= http.StatusInternalServerError:
		entry.WithError(out.err).Error("response completed with error")
	case out.err != nil:
		entry.WithError(out.err).Warn("response completed: access refused")
	default:
		entry.Info("response completed")
	}
}

// statusRecorder remembers the status written, for the log line.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}
