package restore

import (
	"context"
	"fmt"
	"io"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/registry"
	"github.com/hardprune/image-registry/storage"
)

// Recoverer records stored manifests in the image API.
type Recoverer struct {
	Driver driver.StorageDriver
	Client imageclient.ImageV1Interface
	// ServerAddr is the registry's openshift.server.addr, so that recovered Images name the
	// registry as pushed ones do.
	ServerAddr string
	Log        logrus.FieldLogger
}

// Result counts what Recover did.
type Result struct {
	Images, Tags int
	// Failed counts the manifests that could not be recovered (each is logged and printed).
	Failed int
}

// Recover creates the Images of recs that do not exist, from the manifests stored in the
// registry, in the shape a push creates them, and records under LostFoundTag each manifest no
// tag of its repository's stream names, unless it is a child of a recovered manifest list.
// Each action is printed to w. A manifest that cannot be read or understood is printed and
// counted, and the others go on; an image API error stops the recovery.
func (r *Recoverer) Recover(ctx context.Context, w io.Writer, recs []Recovery) (Result, error) {
	var res Result
	manifests := map[digest.Digest]distribution.Manifest{}
	children := prune.NewDigestSet()
	for _, rec := range recs {
		if _, done := manifests[rec.Digest]; done {
			continue
		}
		m, err := storage.ReadManifest(ctx, r.Driver, rec.Digest)
		if err != nil {
			res.Failed++
			fmt.Fprintf(w, "Cannot recover %s@%s: %v\n", rec.Repository, rec.Digest, err)
			manifests[rec.Digest] = nil
			continue
		}
		manifests[rec.Digest] = m
		switch l := m.(type) {
		case *manifestlist.DeserializedManifestList:
			for _, c := range l.Manifests {
				children.Add(c.Digest)
			}
		case *ocischema.DeserializedImageIndex:
			for _, c := range l.Manifests {
				children.Add(c.Digest)
			}
		}
	}
	created := prune.NewDigestSet()
	recorder := &registry.Recorder{Client: r.Client, ServerAddr: r.ServerAddr}
	for _, rec := range recs {
		m := manifests[rec.Digest]
		if m == nil {
			continue
		}
		img, err := recorder.Image(rec.Repository, rec.Digest, m)
		if err != nil {
			res.Failed++
			fmt.Fprintf(w, "Cannot recover %s@%s: %v\n", rec.Repository, rec.Digest, err)
			continue
		}
		if rec.CreateImage && !created.Has(rec.Digest) {
			if err := recorder.RecordImage(ctx, img); err != nil {
				return res, fmt.Errorf("creating Image %s: %w", rec.Digest, err)
			}
			created.Add(rec.Digest)
			res.Images++
			r.Log.WithFields(logrus.Fields{"repository": rec.Repository, "digest": rec.Digest}).
				Info("created the Image")
			fmt.Fprintf(w, "Recovered image %s from %s\n", rec.Digest, rec.Repository)
		}
		if rec.Tag && !children.Has(rec.Digest) {
			tag := LostFoundTag(rec.Digest)
			if err := recorder.RecordTag(ctx, rec.Repository, tag, img); err != nil {
				return res, fmt.Errorf("recording %s:%s: %w", rec.Repository, tag, err)
			}
			res.Tags++
			fmt.Fprintf(w, "Recorded %s:%s (image %s)\n", rec.Repository, tag, rec.Digest)
		}
	}
	return res, nil
}
