package bench

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

// PruneInputs are the dataset as the pruner sees it: the Images and ImageStreams the image
// API lists (already reduced), and the storage inventory, for benchmarks of the pure parts.
func (ds *Dataset) PruneInputs(modTime time.Time) ([]prune.Image, []prune.Stream, *prune.Inventory) {
	var images []prune.Image
	var streams []prune.Stream
	inv := &prune.Inventory{}
	sizes := map[digest.Digest]int64{}
	for _, r := range ds.repos {
		rep := prune.Repository{Name: r.path()}
		var st prune.Stream
		if r.hasStream {
			st.Repository = r.path()
		}
		eachImage(r, func(im *image, tag int, live bool) {
			for _, b := range append(im.layers(), im.manifest, im.config) {
				sizes[b.digest] = int64(len(b.content))
			}
			rep.Manifests = append(rep.Manifests, prune.Link{Digest: im.manifest.digest, ModTime: modTime})
			for _, b := range append(im.layers(), im.config) {
				rep.Layers = append(rep.Layers, prune.Link{Digest: b.digest, ModTime: modTime})
			}
			if live && r.hasStream {
				pi := prune.Image{Manifest: im.manifest.digest, Config: im.config.digest}
				for _, l := range im.layers() {
					pi.Layers = append(pi.Layers, l.digest)
				}
				images = append(images, pi)
				st.Manifests = append(st.Manifests, im.manifest.digest)
			}
		})
		for t, hist := range r.live {
			if len(hist) > 0 {
				tag := prune.Tag{Name: r.tags[t], Current: hist[0].manifest.digest, ModTime: modTime}
				for _, im := range hist {
					tag.Index = append(tag.Index, im.manifest.digest)
				}
				rep.Tags = append(rep.Tags, tag)
			}
		}
		for _, b := range r.loose {
			sizes[b.digest] = int64(len(b.content))
			rep.Layers = append(rep.Layers, prune.Link{Digest: b.digest, ModTime: modTime})
		}
		inv.Repositories = append(inv.Repositories, rep)
		if r.hasStream {
			streams = append(streams, st)
		}
	}
	for d, n := range sizes {
		inv.Blobs = append(inv.Blobs, prune.Blob{Digest: d, Size: n, ModTime: modTime})
	}
	return images, streams, inv
}
