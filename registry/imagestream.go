package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	repositorymiddleware "github.com/distribution/distribution/v3/registry/middleware/repository"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"

	"github.com/hardprune/image-registry/online"
)

// MiddlewareName is the repository middleware that records pushes in the image API. It is the
// name OpenShift's registry configurations already use.
const MiddlewareName = "openshift"

// recorder is what the middleware records pushes with; Serve sets it before the registry starts.
var recorder *Recorder

// Recorder writes pushes into the image API: Images, and tags at the head of ImageStream tag
// histories, in the shape OpenShift's registry gives them.
type Recorder struct {
	Client imageclient.ImageV1Interface
	// ServerAddr is the registry's public host[:port] (openshift.server.addr): Images are
	// <ServerAddr>/<namespace>/<name>@<digest> and streams <ServerAddr>/<namespace>/<name>.
	// Empty, references name no registry host (<namespace>/<name>@<digest>) and streams get no
	// status.dockerImageRepository, as before the address was configurable.
	ServerAddr string
}

func init() {
	if err := repositorymiddleware.Register(MiddlewareName, newImageStreamRepository); err != nil {
		panic(err)
	}
}

func newImageStreamRepository(
	_ context.Context,
	repo distribution.Repository,
	_ map[string]any,
) (distribution.Repository, error) {
	if recorder == nil {
		return nil, fmt.Errorf("the %s repository middleware has no image API client", MiddlewareName)
	}
	return &imageStreamRepository{Repository: repo, recorder: recorder}, nil
}

// imageStreamRepository records every manifest pushed to <namespace>/<name> as an Image, and a
// push by tag at the head of the tag's history in the ImageStream <namespace>/<name>.
type imageStreamRepository struct {
	distribution.Repository
	recorder *Recorder
}

// Tags resolves, besides the tags storage holds, those of the repository's image stream.
func (r *imageStreamRepository) Tags(ctx context.Context) distribution.TagService {
	tags := r.Repository.Tags(ctx)
	if streams == nil {
		return tags
	}
	return &streamTags{TagService: tags, repo: r.Named().Name(), access: streams}
}

func (r *imageStreamRepository) Manifests(
	ctx context.Context,
	options ...distribution.ManifestServiceOption,
) (distribution.ManifestService, error) {
	ms, err := r.Repository.Manifests(ctx, options...)
	if err != nil {
		return nil, err
	}
	return &imageStreamManifests{ManifestService: ms, repo: r}, nil
}

type imageStreamManifests struct {
	distribution.ManifestService
	repo *imageStreamRepository
}

func (m *imageStreamManifests) Put(
	ctx context.Context,
	manifest distribution.Manifest,
	options ...distribution.ManifestServiceOption,
) (digest.Digest, error) {
	tag := ""
	for _, o := range options {
		if t, ok := o.(distribution.WithTagOption); ok {
			tag = t.Tag
		}
	}
	name := m.repo.Named().Name()
	// A tag lives in an image stream, which only <namespace>/<name> repositories have: refuse
	// before storing anything, rather than leave a manifest no stream can name.
	if _, _, err := splitRepository(name); tag != "" && err != nil {
		return "", errcode.ErrorCodeNameInvalid.WithDetail(err.Error())
	}
	ticket, err := beginManifestPut(ctx, name, manifest, tag, m.ManifestService)
	if err != nil {
		return "", err
	}
	defer ticket.Done()
	dgst, err := m.ManifestService.Put(ctx, manifest, options...)
	if err != nil {
		return dgst, err
	}
	// Right before the image API learns of the manifest: a prune run that started meanwhile,
	// and read the API before this put's Image existed, must not find it recorded.
	if err := ticket.Valid(); err != nil {
		return "", errcode.ErrorCodeUnavailable.WithDetail(err.Error() + "; push again")
	}
	rec := m.repo.recorder
	img, err := rec.Image(name, dgst, manifest)
	if err != nil {
		return "", err
	}
	if err := rec.RecordImage(ctx, img); err != nil {
		return "", fmt.Errorf("recording image %s in the image API: %w", dgst, err)
	}
	if tag != "" {
		if err := rec.RecordTag(ctx, name, tag, img); err != nil {
			return "", fmt.Errorf("recording %s:%s in the image API: %w", name, tag, err)
		}
	}
	return dgst, nil
}

// beginManifestPut is a manifest put's part in the online prune protocol. While a prune run
// is under way, the put records what it uses (the manifest, what the manifest names, the tag)
// before storage checks that it all exists, and waits for any batch the prune is deleting
// that names it: the prune then either keeps what the put uses, or deletes it before the put
// looks, and the put fails (manifest blob unknown) rather than record a broken image.
//
// A manifest list or image index uses what its manifests use too: a client skips pushing a
// child manifest the repository holds, and distribution checks only that the children
// exist, not what they name; so the children already stored are read, and their references
// recorded with theirs.
func beginManifestPut(
	ctx context.Context,
	repo string,
	manifest distribution.Manifest,
	tag string,
	stored distribution.ManifestService,
) (*online.Ticket, error) {
	ticket, err := onlineReplica.Begin()
	if err != nil {
		return nil, errcode.ErrorCodeUnavailable.WithDetail(err.Error())
	}
	if ticket.Run() == "" {
		return ticket, nil
	}
	_, payload, err := manifest.Payload()
	if err != nil {
		ticket.Done()
		return nil, err
	}
	uses := []online.Use{{Repository: repo, Digest: digest.FromBytes(payload), Tag: tag}}
	uses = appendReferences(ctx, uses, repo, manifest, stored, 0)
	err = ticket.Record(ctx, uses)
	if err == nil {
		err = ticket.WaitUnclaimed(ctx, uses)
	}
	if err != nil {
		ticket.Done()
		return nil, errcode.ErrorCodeUnavailable.WithDetail(err.Error())
	}
	return ticket, nil
}

// appendReferences adds to uses what manifest names in repo, and, for a manifest list or an
// image index, what its children stored in repo name (a list of lists at most, as clusters
// hold). A child not stored adds nothing: distribution refuses the put for it.
func appendReferences(
	ctx context.Context,
	uses []online.Use,
	repo string,
	manifest distribution.Manifest,
	stored distribution.ManifestService,
	depth int,
) []online.Use {
	for _, d := range manifest.References() {
		uses = append(uses, online.Use{Repository: repo, Digest: d.Digest})
	}
	switch manifest.(type) {
	case *manifestlist.DeserializedManifestList, *ocischema.DeserializedImageIndex:
	default:
		return uses
	}
	if depth >= maxManifestList {
		return uses
	}
	for _, d := range manifest.References() {
		if child, err := stored.Get(ctx, d.Digest); err == nil {
			uses = appendReferences(ctx, uses, repo, child, stored, depth+1)
		}
	}
	return uses
}

// repository is how references name repo: <ServerAddr>/<repo>, or repo alone without an address.
func (r *Recorder) repository(repo string) string {
	if r.ServerAddr == "" {
		return repo
	}
	return r.ServerAddr + "/" + repo
}

// Image builds the Image object of a manifest pushed to repo, as OpenShift's registry does:
// managed, its manifest stored, its layers in ascending order, with the metadata tools read
// (the config digest as Id, and the image's Size). -restore=recover builds the same.
func (r *Recorder) Image(repo string, dgst digest.Digest, manifest distribution.Manifest) (*imagev1.Image, error) {
	mediaType, payload, err := manifest.Payload()
	if err != nil {
		return nil, err
	}
	img := &imagev1.Image{
		ObjectMeta: metav1.ObjectMeta{
			Name: dgst.String(),
			Annotations: map[string]string{
				imagev1.ManagedByOpenShiftAnnotation:      "true",
				imagev1.ImageManifestBlobStoredAnnotation: "true",
			},
		},
		DockerImageReference:         r.repository(repo) + "@" + dgst.String(),
		DockerImageManifestMediaType: mediaType,
		DockerImageManifest:          string(payload),
	}
	var config v1.Descriptor
	var layers []v1.Descriptor
	switch m := manifest.(type) {
	case *schema2.DeserializedManifest:
		config, layers = m.Config, m.Layers
	case *ocischema.DeserializedManifest:
		config, layers = m.Config, m.Layers
	case *manifestlist.DeserializedManifestList:
		for _, c := range m.Manifests {
			img.DockerImageManifests = append(img.DockerImageManifests, imagev1.ImageManifest{
				Digest: c.Digest.String(), MediaType: c.MediaType, ManifestSize: c.Size,
				Architecture: c.Platform.Architecture, OS: c.Platform.OS, Variant: c.Platform.Variant,
			})
		}
	case *ocischema.DeserializedImageIndex:
		for _, c := range m.Manifests {
			im := imagev1.ImageManifest{Digest: c.Digest.String(), MediaType: c.MediaType, ManifestSize: c.Size}
			if c.Platform != nil {
				im.Architecture, im.OS, im.Variant = c.Platform.Architecture, c.Platform.OS, c.Platform.Variant
			}
			img.DockerImageManifests = append(img.DockerImageManifests, im)
		}
	default:
		return nil, fmt.Errorf("manifest %s has the unsupported media type %s", dgst, mediaType)
	}
	for _, l := range layers {
		img.DockerImageLayers = append(
			img.DockerImageLayers,
			imagev1.ImageLayer{Name: l.Digest.String(), LayerSize: l.Size, MediaType: l.MediaType},
		)
	}
	if config.Digest != "" {
		// Without the annotation, OpenShift's tools take a schema 2 Image's layers for the
		// descending order of Images recorded long ago, and reverse them.
		img.Annotations[imagev1.DockerImageLayersOrderAnnotation] = imagev1.DockerImageLayersOrderAscending
		meta, _ := json.Marshal(
			map[string]any{
				"kind":       "DockerImage",
				"apiVersion": "1.0",
				"Id":         config.Digest.String(),
				"Size":       imageSize(config, layers),
			},
		)
		img.DockerImageMetadata = runtime.RawExtension{Raw: meta}
		img.DockerImageMetadataVersion = "1.0"
	}
	return img, nil
}

// imageSize is an image's size as OpenShift computes it (and quotas and size-based pruning
// read it): the config blob, plus each distinct layer once; a layer that is the config blob
// counts once too. The manifest itself does not count.
func imageSize(config v1.Descriptor, layers []v1.Descriptor) int64 {
	size := config.Size
	seen := map[digest.Digest]bool{config.Digest: true}
	for _, l := range layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			size += l.Size
		}
	}
	return size
}

// RecordImage creates img in the image API; an Image that exists already is left as it is.
func (r *Recorder) RecordImage(ctx context.Context, img *imagev1.Image) error {
	_, err := r.Client.Images().Create(ctx, img, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// RecordTag puts img at the head of the history of repo's tag, creating the stream if needed
// and retrying when another push updated it meanwhile. The stream's
// status.dockerImageRepository is set to this registry's on the way.
func (r *Recorder) RecordTag(ctx context.Context, repo, tag string, img *imagev1.Image) error {
	namespace, name, err := splitRepository(repo)
	if err != nil {
		return err
	}
	event := imagev1.TagEvent{
		Created:              metav1.NewTime(time.Now()),
		DockerImageReference: img.DockerImageReference,
		Image:                img.Name,
	}
	streams := r.Client.ImageStreams(namespace)
	// Only with an address: a repository without a host would name one on Docker Hub.
	dockerImageRepository := ""
	if r.ServerAddr != "" {
		dockerImageRepository = r.repository(repo)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		is, err := streams.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			is = &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
			is.Status.DockerImageRepository = dockerImageRepository
			is.Status.Tags = []imagev1.NamedTagEventList{{Tag: tag, Items: []imagev1.TagEvent{event}}}
			_, err = streams.Create(ctx, is, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(imagev1.Resource("imagestreams"), name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		changed := prependTagEvent(is, tag, event)
		if dockerImageRepository != "" && is.Status.DockerImageRepository != dockerImageRepository {
			is.Status.DockerImageRepository = dockerImageRepository
			changed = true
		}
		if !changed {
			return nil
		}
		_, err = streams.UpdateStatus(ctx, is, metav1.UpdateOptions{})
		return err
	})
}

// prependTagEvent puts event at the head of the tag's history, unless it is already there.
func prependTagEvent(is *imagev1.ImageStream, tag string, event imagev1.TagEvent) bool {
	for i := range is.Status.Tags {
		t := &is.Status.Tags[i]
		if t.Tag != tag {
			continue
		}
		if len(t.Items) > 0 && t.Items[0].Image == event.Image {
			return false
		}
		t.Items = append([]imagev1.TagEvent{event}, t.Items...)
		return true
	}
	is.Status.Tags = append(is.Status.Tags, imagev1.NamedTagEventList{Tag: tag, Items: []imagev1.TagEvent{event}})
	return true
}

// splitRepository splits "<namespace>/<name>", the only repository names image streams map to.
func splitRepository(repo string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(repo, "/")
	if !ok || strings.Contains(name, "/") {
		return "", "", fmt.Errorf(
			"repository %q is not <namespace>/<name>: tags can only be pushed to an image stream's repository",
			repo,
		)
	}
	return namespace, name, nil
}

// Blobs counts, while a prune run is under way, an upload into the repository as a use of it:
// the start of one is recorded before the upload exists (so that the run does not remove the
// repository under it, or the upload fails at once), each later step as a hint.
func (r *imageStreamRepository) Blobs(ctx context.Context) distribution.BlobStore {
	return &uploadUses{BlobStore: r.Repository.Blobs(ctx), repo: r.Named().Name()}
}

type uploadUses struct {
	distribution.BlobStore
	repo string
}

func (u *uploadUses) Create(ctx context.Context, options ...distribution.BlobCreateOption) (distribution.BlobWriter, error) {
	if onlineReplica.Active() {
		ticket, err := onlineReplica.Begin()
		if err != nil {
			return nil, errcode.ErrorCodeUnavailable.WithDetail(err.Error())
		}
		uses := []online.Use{{Repository: u.repo}}
		err = ticket.Record(ctx, uses)
		if err == nil {
			err = ticket.WaitUnclaimed(ctx, uses)
		}
		ticket.Done()
		if err != nil {
			return nil, errcode.ErrorCodeUnavailable.WithDetail(err.Error())
		}
	}
	return u.BlobStore.Create(ctx, options...)
}

func (u *uploadUses) Resume(ctx context.Context, id string) (distribution.BlobWriter, error) {
	onlineReplica.Used(online.Use{Repository: u.repo})
	return u.BlobStore.Resume(ctx, id)
}
