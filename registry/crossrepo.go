package registry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/lru"

	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/online"
	"github.com/hardprune/image-registry/storage"
)

// streamAccess serves a repository the blobs and manifests its image stream uses but its
// storage does not link, as OpenShift's registry does: a tag copied across namespaces
// (b/app:v1 naming an Image pushed to a/app) pulls from b/app, whose storage holds nothing
// of it. It sits behind each repository's blob and manifest statter (distribution's
// BlobDescriptorServiceFactory), so Get, Open and ServeBlob, which stat first, follow it.
//
// What a stream uses is read from the image API and kept for ttl per repository (a push
// after that is seen at most ttl late); Images never change what they use, so each is read
// once, within a bounded cache.
type streamAccess struct {
	client imageclient.ImageV1Interface
	// blobs stats a blob registry-wide, as distribution's own global statter does.
	blobs driver.StorageDriver
	ttl   time.Duration

	mu      sync.Mutex
	streams map[string]streamUse
	images  *lru.Cache // Image name -> the digests it uses ([]digest.Digest)
}

// noImage is the image cache's entry for a digest no Image is named by (a layer, a config),
// believed until until: a manifest's Image may be created later.
type noImage struct{ until time.Time }

const noImageTTL = time.Minute

// streamReadTimeout bounds one reading of what a stream uses (a var for tests).
var streamReadTimeout = 10 * time.Second

// streams is the access Serve sets up before the registry starts; nil, only what storage
// links is served.
var streams *streamAccess

// streamUse is what one repository's stream uses, and until when that is believed.
type streamUse struct {
	digests map[digest.Digest]bool
	tags    map[string]digest.Digest // each tag's newest image
	until   time.Time
}

const (
	streamUseTTL    = 10 * time.Second
	imageCacheSize  = 10000
	maxManifestList = 2 // a list of lists at most, as clusters hold
)

func newStreamAccess(client imageclient.ImageV1Interface, blobs driver.StorageDriver) *streamAccess {
	return &streamAccess{
		client: client, blobs: blobs, ttl: streamUseTTL,
		streams: map[string]streamUse{}, images: lru.New(imageCacheSize),
	}
}

// BlobAccessController implements distribution.BlobDescriptorServiceFactory.
func (a *streamAccess) BlobAccessController(svc distribution.BlobDescriptorService) distribution.BlobDescriptorService {
	return &streamStatter{BlobDescriptorService: svc, access: a}
}

type streamStatter struct {
	distribution.BlobDescriptorService
	access *streamAccess
}

// Stat answers for a digest the repository links, else for one its stream uses and storage
// holds. The repository is the request's (distribution puts its name in the context).
func (s *streamStatter) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	desc, err := s.BlobDescriptorService.Stat(ctx, dgst)
	repo, _ := ctx.Value("vars.name").(string)
	if err == nil {
		// A blob asked for (a push's HEAD, a pull's GET, a manifest put's check): while a
		// prune runs, it keeps the blob and the repository's link rather than fail the push.
		onlineReplica.Used(online.Use{Repository: repo, Digest: dgst})
	}
	if err != distribution.ErrBlobUnknown {
		return desc, err
	}
	if repo == "" || !s.access.uses(ctx, repo, dgst) {
		return desc, err
	}
	fi, serr := s.access.blobs.Stat(ctx, storage.BlobDataPath(dgst))
	if serr != nil || fi.IsDir() {
		return desc, err // used, but not stored (pruned, or never pushed here)
	}
	return v1.Descriptor{Digest: dgst, Size: fi.Size(), MediaType: "application/octet-stream"}, nil
}

// SetDescriptor is called when a blob is linked into the repository (an upload's end, a
// mount): a use, as Stat's.
func (s *streamStatter) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	repo, _ := ctx.Value("vars.name").(string)
	onlineReplica.Used(online.Use{Repository: repo, Digest: dgst})
	return s.BlobDescriptorService.SetDescriptor(ctx, dgst, desc)
}

// uses tells whether repo's image stream names dgst or an Image that uses it. An image API
// that does not answer makes it false: nothing is served that storage does not link.
func (a *streamAccess) uses(ctx context.Context, repo string, dgst digest.Digest) bool {
	u, ok := a.use(ctx, repo)
	return ok && u.digests[dgst]
}

// tag is the newest image of repo's stream's tag, if the stream has one.
func (a *streamAccess) tag(ctx context.Context, repo, tag string) (digest.Digest, bool) {
	u, ok := a.use(ctx, repo)
	if !ok {
		return "", false
	}
	d, ok := u.tags[tag]
	return d, ok
}

// use is what repo's stream uses, read again once older than ttl; false when the image API
// did not answer.
func (a *streamAccess) use(ctx context.Context, repo string) (streamUse, bool) {
	a.mu.Lock()
	u, ok := a.streams[repo]
	a.mu.Unlock()
	// While a prune runs, what a stream used a moment ago may be what the run just deleted
	// the link of: only a fresh reading lets a blob be served (or a manifest put pass) unlinked.
	if ok && time.Now().Before(u.until) && !onlineReplica.Active() {
		return u, true
	}
	// Bounded: a blob request must not hang on an image API that stops answering.
	rctx, cancel := context.WithTimeout(ctx, streamReadTimeout)
	defer cancel()
	u, err := a.read(rctx, repo)
	if err != nil {
		logrus.Warnf("reading what image stream %s uses (serving it only what it links): %v", repo, err)
		return streamUse{}, false
	}
	u.until = time.Now().Add(a.ttl)
	a.mu.Lock()
	a.streams[repo] = u
	a.mu.Unlock()
	return u, true
}

// read collects the manifests repo's stream names, every digest their Images use, and the
// newest image of each tag.
func (a *streamAccess) read(ctx context.Context, repo string) (streamUse, error) {
	namespace, name, err := splitRepository(repo)
	if err != nil {
		return streamUse{}, nil // no stream can have this name
	}
	is, err := a.client.ImageStreams(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return streamUse{}, nil
	}
	if err != nil {
		return streamUse{}, err
	}
	history, err := imageapi.TagHistories(is)
	if err != nil {
		return streamUse{}, err
	}
	u := streamUse{digests: map[digest.Digest]bool{}, tags: map[string]digest.Digest{}}
	for _, t := range history.Tags {
		if len(t.Items) > 0 {
			u.tags[t.Tag] = t.Items[0].Image
		}
		for _, item := range t.Items {
			if err := a.addImage(ctx, item.Image, u.digests, maxManifestList); err != nil {
				return streamUse{}, err
			}
		}
	}
	return u, nil
}

// streamTags resolves a tag that storage does not hold through the repository's image stream,
// as OpenShift's registry does: its newest image.
type streamTags struct {
	distribution.TagService
	repo   string
	access *streamAccess
}

func (t *streamTags) Get(ctx context.Context, tag string) (v1.Descriptor, error) {
	desc, err := t.TagService.Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	if !errors.As(err, &unknown) {
		return desc, err
	}
	if d, ok := t.access.tag(ctx, t.repo, tag); ok {
		return v1.Descriptor{Digest: d}, nil
	}
	return desc, err
}

// addImage adds the manifest m and what its Image uses to used, a list's children with
// theirs, down to depth lists.
func (a *streamAccess) addImage(ctx context.Context, m digest.Digest, used map[digest.Digest]bool, depth int) error {
	if used[m] {
		return nil
	}
	used[m] = true
	var digests []digest.Digest
	if v, ok := a.images.Get(m); ok {
		switch v := v.(type) {
		case []digest.Digest:
			digests = v
		case noImage:
			if time.Now().Before(v.until) {
				return nil
			}
		}
	}
	if digests == nil {
		img, err := a.client.Images().Get(ctx, m.String(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// A layer (or a manifest whose Image is gone or not yet created): the digest alone.
			// Said for a while, so that every layer of every image costs no request each time
			// a stream is read.
			a.images.Add(m, noImage{until: time.Now().Add(noImageTTL)})
			return nil
		}
		if err != nil {
			return err
		}
		reduced, err := imageapi.ReduceImage(img)
		if err != nil {
			return nil // an Image the pruner cannot read either: serve only what is linked
		}
		digests = append(append([]digest.Digest{}, reduced.Layers...), reduced.Children...)
		if reduced.Config != "" {
			digests = append(digests, reduced.Config)
		}
		a.images.Add(m, digests)
	}
	for _, d := range digests {
		if depth > 0 {
			// A child of a list is a manifest with an Image of its own; a layer has none, and
			// its lookup costs one request the first time only.
			if err := a.addImage(ctx, d, used, depth-1); err != nil {
				return err
			}
			continue
		}
		used[d] = true
	}
	return nil
}
