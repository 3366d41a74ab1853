// Package bench generates synthetic registries (storage and the matching image API objects)
// and measures `dockerregistry -prune=check` on them against `find` and distribution's own
// garbage collector, and `-prune=delete` against `xargs rm -rf` of the same paths and in S3
// requests. `make bench` runs it; cmd/bench is its command line.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/hardprune/image-registry/storage"
)

// Size is the shape of a synthetic registry.
type Size struct {
	Name string
	// Blobs is the number of blobs in storage, Repositories the number of repositories.
	Blobs, Repositories int
	// Orphans is the share of blobs no Image references.
	Orphans float64
}

// Sizes are the named sizes: "full" is the target, "huge" its million blobs (target
// 6), "small" a quick smoke run, "tiny" the go test one.
var Sizes = map[string]Size{
	"huge":  {Name: "huge", Blobs: 1_000_000, Repositories: 100_000, Orphans: 0.30},
	"full":  {Name: "full", Blobs: 200_000, Repositories: 20_000, Orphans: 0.30},
	"small": {Name: "small", Blobs: 4_000, Repositories: 400, Orphans: 0.30},
	"tiny":  {Name: "tiny", Blobs: 600, Repositories: 60, Orphans: 0.30},
}

const (
	mediaTypeManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeConfig   = "application/vnd.docker.container.image.v1+json"
	mediaTypeLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// sharedPerImage base layers from the shared pool go into every image, besides its own.
	sharedPerImage = 2
)

type blob struct {
	digest  digest.Digest
	content []byte
}

func newBlob(content []byte) blob {
	return blob{digest: digest.FromBytes(content), content: content}
}

// image is one schema 2 image: manifest, config, its own layer, and shared base layers.
type image struct {
	manifest, config, own blob
	shared                []blob
}

func (im *image) layers() []blob { return append(append([]blob(nil), im.shared...), im.own) }

// repo is one repository: the images its stream's tag histories name (live, newest first per
// tag) and those only storage still has (orphaned: the Image was deleted and the history
// trimmed, or the whole stream is gone).
type repo struct {
	namespace, name string
	hasStream       bool
	tags            []string
	live            [][]*image // per tag, newest first
	orphaned        []*image   // in storage under tags[0]'s index, not in any history
	loose           []blob     // a push that died after its first layer: blob and layer link
}

func (r *repo) path() string { return r.namespace + "/" + r.name }

// Dataset is a generated registry, kept in memory until written.
type Dataset struct {
	Size  Size
	repos []*repo
	pool  []blob
	// What it holds, for the report and to check the prune's answer.
	StoredBlobs, OrphanBlobs, ReferencedBlobs int
	OrphanBytes                               int64
	Images, Streams                           int
	// Objects is every file written (blobs and links), the number of keys on S3.
	Objects int
}

// Generate builds a dataset of the given size: ceil(Blobs×(1-Orphans)) referenced blobs (a
// shared pool of base layers, and three blobs of each live image: manifest, config, own
// layer) over 90% of the repositories, which have image streams; the orphans are 60% images
// removed from their streams' histories and from the API (left in their repositories' storage),
// 30% images of repositories whose stream is gone (10% of the repositories), and 10% loose
// blobs of pushes that died half way.
func Generate(size Size) *Dataset {
	ds := &Dataset{Size: size}
	referenced := size.Blobs - int(float64(size.Blobs)*size.Orphans)
	orphans := size.Blobs - referenced
	poolN := max(sharedPerImage, size.Blobs/100)
	liveImages := max(1, (referenced-poolN)/3)
	orphanRepos := max(1, size.Repositories/10)
	liveRepos := max(1, size.Repositories-orphanRepos)
	orphanedImages := orphans * 6 / 10 / 3
	goneImages := orphans * 3 / 10 / 3
	looseBlobs := orphans - 3*(orphanedImages+goneImages)

	for i := range poolN {
		ds.pool = append(ds.pool, newBlob(fmt.Appendf(nil, "shared base layer %d", i)))
	}
	seq := 0
	newImage := func() *image {
		seq++
		im := &image{own: newBlob(fmt.Appendf(nil, "own layer of image %d", seq))}
		for k := range sharedPerImage {
			im.shared = append(im.shared, ds.pool[(seq*7+k*13)%poolN])
		}
		cfg, _ := json.Marshal(
			map[string]any{
				"architecture": "amd64",
				"os":           "linux",
				"config":       map[string]any{"Labels": map[string]string{"bench": fmt.Sprint(seq)}},
			},
		)
		im.config = newBlob(cfg)
		m := map[string]any{"schemaVersion": 2, "mediaType": mediaTypeManifest,
			"config": map[string]any{
				"mediaType": mediaTypeConfig,
				"size":      len(im.config.content),
				"digest":    im.config.digest,
			}}
		var ls []map[string]any
		for _, l := range im.layers() {
			ls = append(ls, map[string]any{"mediaType": mediaTypeLayer, "size": len(l.content), "digest": l.digest})
		}
		m["layers"] = ls
		raw, _ := json.MarshalIndent(m, "", "   ")
		im.manifest = newBlob(raw)
		return im
	}

	namespaces := max(1, size.Repositories/100)
	for i := range size.Repositories {
		r := &repo{
			namespace: fmt.Sprintf("ns%d", i%namespaces),
			name:      fmt.Sprintf("repo%d", i),
			hasStream: i < liveRepos,
			tags:      []string{"latest", "v1"},
		}
		r.live = make([][]*image, len(r.tags))
		ds.repos = append(ds.repos, r)
	}
	live, dead := ds.repos[:liveRepos], ds.repos[liveRepos:]
	for i := range liveImages {
		r := live[i%len(live)]
		t := (i / len(live)) % len(r.tags)
		r.live[t] = append([]*image{newImage()}, r.live[t]...)
	}
	for i := range orphanedImages {
		r := live[(i*31)%len(live)]
		r.orphaned = append(r.orphaned, newImage())
	}
	for i := range goneImages {
		r := dead[i%len(dead)]
		r.live[0] = append([]*image{newImage()}, r.live[0]...)
	}
	for i := range looseBlobs {
		r := live[(i*17)%len(live)]
		r.loose = append(r.loose, newBlob(fmt.Appendf(nil, "half-pushed layer %d", i)))
	}

	// Count what is stored and what is referenced.
	stored := map[digest.Digest]int64{}
	referencedSet := map[digest.Digest]bool{}
	store := func(b blob) { stored[b.digest] = int64(len(b.content)) }
	for _, r := range ds.repos {
		links := 0
		// Images of a repository share base layers: one layer link each, however many
		// images name it.
		layerLinks := map[digest.Digest]bool{}
		eachImage(r, func(im *image, tag int, live bool) {
			for _, b := range append(im.layers(), im.manifest, im.config) {
				store(b)
				if live && r.hasStream {
					referencedSet[b.digest] = true
				}
			}
			for _, b := range append(im.layers(), im.config) {
				layerLinks[b.digest] = true
			}
			links += 1 + 1 // revision, tag index
			if live && r.hasStream {
				ds.Images++
			}
		})
		for _, b := range r.loose {
			store(b)
			layerLinks[b.digest] = true
		}
		links += len(layerLinks)
		for t := range r.tags {
			if len(r.live[t]) > 0 {
				links++ // current link
			}
		}
		ds.Objects += links
		if r.hasStream {
			ds.Streams++
		}
	}
	ds.StoredBlobs = len(stored)
	ds.Objects += len(stored)
	ds.ReferencedBlobs = len(referencedSet)
	for d, n := range stored {
		if !referencedSet[d] {
			ds.OrphanBlobs++
			ds.OrphanBytes += n
		}
	}
	return ds
}

// eachImage calls f for every image stored in r: those of its tag histories (live) and the
// orphaned ones (under tag 0).
func eachImage(r *repo, f func(im *image, tag int, live bool)) {
	for t, hist := range r.live {
		for _, im := range hist {
			f(im, t, true)
		}
	}
	for _, im := range r.orphaned {
		f(im, 0, false)
	}
}

// WriteStorage writes the dataset straight to disk in distribution's layout, rooted at root
// (a filesystem driver's rootdirectory, or a versitygw posix bucket directory, whose files are
// the bucket's objects), with up to workers files written at once. Paths come from the storage
// package's builders, the project's single owner of the layout.
func (ds *Dataset) WriteStorage(ctx context.Context, root string, workers int) error {
	type file struct {
		path    string
		content []byte
		mtime   time.Time
	}
	files := make(chan file, 1024)
	g, ctx := errgroup.WithContext(ctx)
	var dirs sync.Map
	var written atomic.Int64
	for range workers {
		g.Go(func() error {
			for f := range files {
				p := filepath.Join(root, filepath.FromSlash(f.path))
				dir := filepath.Dir(p)
				if _, ok := dirs.Load(dir); !ok {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						return err
					}
					dirs.Store(dir, true)
				}
				if err := os.WriteFile(p, f.content, 0o644); err != nil {
					return err
				}
				if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
					return err
				}
				written.Add(1)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(files)
		// Times of a push history, as a registry that was used for months has them: the items
		// of a tag's history an hour apart, newest first, the current link written with the
		// newest; orphans older than any history. (Files written in one go would all share a
		// second, which object stores report at that resolution, and the times would say
		// nothing about which entry of an index is current.)
		base := time.Now().Add(-30 * 24 * time.Hour)
		var at time.Time
		send := func(p string, content []byte) error {
			select {
			case files <- file{p, content, at}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		link := func(d digest.Digest) []byte { return []byte(d.String()) }
		seen := map[digest.Digest]bool{}
		putBlob := func(b blob) error {
			if seen[b.digest] {
				return nil
			}
			seen[b.digest] = true
			return send(storage.BlobDataPath(b.digest), b.content)
		}
		for _, r := range ds.repos {
			name := r.path()
			var err error
			orphan := 0
			eachImage(r, func(im *image, tag int, live bool) {
				if err != nil {
					return
				}
				if live {
					at = base.Add(-time.Duration(slices.Index(r.live[tag], im)) * time.Hour)
				} else {
					orphan++
					newer := 0
					if len(r.live) > 0 {
						newer = len(r.live[0])
					}
					at = base.Add(-time.Duration(newer+orphan) * time.Hour)
				}
				for _, b := range append(im.layers(), im.manifest, im.config) {
					if err = putBlob(b); err != nil {
						return
					}
				}
				if err = send(storage.ManifestRevisionLinkPath(name, im.manifest.digest), link(im.manifest.digest)); err != nil {
					return
				}
				for _, b := range append(im.layers(), im.config) {
					if err = send(storage.LayerLinkPath(name, b.digest), link(b.digest)); err != nil {
						return
					}
				}
				err = send(
					storage.TagIndexEntryLinkPath(name, r.tags[tag], im.manifest.digest),
					link(im.manifest.digest),
				)
			})
			if err != nil {
				return err
			}
			at = base
			for t, hist := range r.live {
				if len(hist) > 0 {
					if err := send(storage.TagCurrentLinkPath(name, r.tags[t]), link(hist[0].manifest.digest)); err != nil {
						return err
					}
				}
			}
			at = base.Add(-1000 * time.Hour)
			for _, b := range r.loose {
				if err := putBlob(b); err != nil {
					return err
				}
				if err := send(storage.LayerLinkPath(name, b.digest), link(b.digest)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return g.Wait()
}

// CreateAPIObjects creates the Images of the live images and the ImageStreams (with their
// tag histories in the status, which the API server keeps at create), workers at once.
func (ds *Dataset) CreateAPIObjects(ctx context.Context, client imageclient.ImageV1Interface, workers int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	now := metav1.NewTime(time.Now())
	for _, r := range ds.repos {
		if !r.hasStream {
			continue
		}
		for _, hist := range r.live {
			for _, im := range hist {
				g.Go(func() error {
					_, err := client.Images().Create(ctx, apiImage(r, im), metav1.CreateOptions{})
					if err != nil {
						return fmt.Errorf("creating Image %s: %w", im.manifest.digest, err)
					}
					return nil
				})
			}
		}
		g.Go(func() error {
			is := &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Namespace: r.namespace, Name: r.name}}
			for t, hist := range r.live {
				if len(hist) == 0 {
					continue
				}
				tl := imagev1.NamedTagEventList{Tag: r.tags[t]}
				for _, im := range hist {
					tl.Items = append(tl.Items, imagev1.TagEvent{Created: now, Image: im.manifest.digest.String(),
						DockerImageReference: r.path() + "@" + im.manifest.digest.String()})
				}
				is.Status.Tags = append(is.Status.Tags, tl)
			}
			if _, err := client.ImageStreams(r.namespace).Create(ctx, is, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating ImageStream %s: %w", r.path(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

func apiImage(r *repo, im *image) *imagev1.Image {
	img := &imagev1.Image{
		ObjectMeta:                   metav1.ObjectMeta{Name: im.manifest.digest.String()},
		DockerImageReference:         r.path() + "@" + im.manifest.digest.String(),
		DockerImageManifestMediaType: mediaTypeManifest,
		DockerImageMetadataVersion:   "1.0",
	}
	for _, l := range im.layers() {
		img.DockerImageLayers = append(
			img.DockerImageLayers,
			imagev1.ImageLayer{Name: l.digest.String(), LayerSize: int64(len(l.content)), MediaType: mediaTypeLayer},
		)
	}
	meta, _ := json.Marshal(
		map[string]any{
			"kind":       "DockerImage",
			"apiVersion": "1.0",
			"Id":         im.config.digest.String(),
			"Size":       len(im.config.content),
		},
	)
	img.DockerImageMetadata = runtime.RawExtension{Raw: meta}
	return img
}
